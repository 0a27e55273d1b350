"""pyserial URL handlers of penctl's own, found through `serial.protocol_handler_packages`
(pyserial's documented hook; transport.py adds this package ahead of pyserial's own)."""
