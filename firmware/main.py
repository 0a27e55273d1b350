# Entry point on the board. On an ESP32 the PWM keeps running after main.py ends and
# the REPL takes over (Ctrl-C from mpremote does exactly that), so whatever happens,
# the finally below puts the motor outputs in their safe state.
import app_mode

try:
    if app_mode.service_mode():
        print("pen: service mode; the firmware is not running (remove /service, then reset)")
    else:
        import app

        app.run()
finally:
    import board
    import motor

    motor.force_off(board.load())
