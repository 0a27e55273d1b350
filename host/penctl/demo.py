"""`make demo`: a short treatment on the virtual board, with live status and a summary."""

import argparse

from rich.console import Console
from rich.live import Live

from . import Pen
from .session import run_pass
from .sim import VirtualBoard
from .views import pass_table, session_detail, status_table

console = Console()


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--board", default="virtual")
    parser.add_argument("--depth", type=float, default=0.5)
    parser.add_argument("--rate", type=float, default=100)
    parser.add_argument("--seconds", type=float, default=5)
    parser.add_argument("--profile", default="forehead",
                        help="treatment profile whose caps the board enforces")
    args = parser.parse_args(argv)
    with VirtualBoard(args.board) as board:
        console.print("virtual board %r up at %s" % (args.board, board.port))
        cartridge = board.insert_cartridge()  # a new one, sealed: its 1-Wire id is all it has
        console.print("cartridge %s fitted (new: no pen's mark on its ID chip)" % cartridge)
        with Pen(board.port) as pen:
            console.print("connected: firmware %s, protocol %s" % (pen.info["fw"],
                                                                    pen.info["proto"]))
            # a fresh board runs on the safe defaults and says so (CONFIG) until a profile
            # is chosen and saved
            fields = pen.use_profile(args.profile)
            caps = pen.get()
            console.print("profile %s: the board caps depth at %s mm and rate at %s Hz" % (
                fields["profile"], caps["cap"], caps["rate_cap"]))
            console.print("homing, then %.2f mm at %.0f Hz for %.0f s" % (
                args.depth, args.rate, args.seconds))
            with Live(console=console, refresh_per_second=10) as live:
                report = run_pass(pen, args.depth, args.rate, args.seconds,
                                  on_status=lambda st, t: live.update(status_table(st, t)))
            console.print()
            console.print(pass_table(report))
            # the operator ends the session: its record goes into the board's log, and the
            # cartridge, marked on its chip, is refused from now on
            pen.session(end=True)
            console.print(session_detail(pen.sessions()[-1]))
            console.print("cartridge %s: marked used on its chip (%d strokes); this pen and any "
                          "other will refuse it" % (cartridge, board.cartridge()["row"][0]))
        board.check()


if __name__ == "__main__":
    main()
