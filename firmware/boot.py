# Runs before main.py on every boot. Nothing here may start the motor.
