"""pen flash's esptool work on one connection: `python -m penctl.flash_session`.

esptool's command line connects, resets the chip and uploads its stub flasher anew for each
command, and pen flash needs up to three (flash id, erase, write). Over RFC 2217 pyserial's
client spends ~0.2 s on acknowledgement polls for each of esptool's commands (it reconfigures
the port on every timeout change), so the second connection doubled a flash (45 s against the
virtual board, 21 s of it reading the chip and flash id again). This runs the same steps
through esptool's documented scripting API (esptool.cmds), in its own process as the command
line would run: connect with the `before` reset, the chip's description and MAC, the stub
flasher unless --no-stub, the flash id and size, the erase if asked, the write with esptool's
own hash check, then the `after` reset. It ends as esptool's command line ends on an error:
"A fatal error occurred: ..." and exit status 2.
"""

import argparse
import sys

import serial
from esptool.cmds import (
    attach_flash,
    connect_esp,
    detect_flash_size,
    erase_flash,
    erase_region,
    flash_id,
    read_mac,
    reset_chip,
    run_stub,
    write_flash,
)
from esptool.util import FatalError, flash_size_bytes

_ROM_ERASE_BYTES = 4 * 1024 * 1024  # where the ROM cannot tell the flash's size


def _arguments(argv):
    parser = argparse.ArgumentParser(prog="python -m penctl.flash_session")
    parser.add_argument("--chip", required=True)
    parser.add_argument("--port", required=True)
    parser.add_argument("--before", default="default-reset")
    parser.add_argument("--after", default="hard-reset")
    parser.add_argument("--connect-attempts", type=int, default=7)
    parser.add_argument("--no-stub", action="store_true")
    parser.add_argument("--erase", action="store_true", help="erase the whole flash first")
    parser.add_argument("--compress", action="store_true")
    parser.add_argument("offset", type=lambda text: int(text, 0))
    parser.add_argument("image")
    return parser.parse_args(argv)


def _erase(esp, stub):
    if stub:
        erase_flash(esp)
    else:  # the ROM has no erase-all; it erases regions
        size = detect_flash_size(esp)
        erase_region(esp, 0, flash_size_bytes(size) if size else _ROM_ERASE_BYTES)


def _flash(args):
    with connect_esp(port=args.port, chip=args.chip, before=args.before,
                     connect_attempts=args.connect_attempts) as esp:
        print("Chip type:          %s" % esp.get_chip_description())
        read_mac(esp)
        if not args.no_stub:
            esp = run_stub(esp)
        attach_flash(esp)
        flash_id(esp)
        if args.erase:
            _erase(esp, not args.no_stub)
        write_flash(esp, [(args.offset, args.image)], compress=args.compress,
                    no_compress=not args.compress)
        reset_chip(esp, args.after)


def main(argv=None):
    args = _arguments(argv)
    try:
        _flash(args)
    except FatalError as e:
        print("\nA fatal error occurred: %s" % e, flush=True)
        return 2
    except serial.SerialException as e:
        print("\nA serial exception error occurred: %s" % e, flush=True)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
