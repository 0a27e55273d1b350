# The caps on depth and stroke rate: the board's own depth cap, and the active treatment
# profile's caps on top of it (protocol.PROFILES). A refusal names the profile and its cap.
import protocol as P


class Caps:
    def __init__(self, board):
        self.board_um = int(board["depth"]["cap_mm"] * 1000 + 0.5)
        self.choose(0)

    def choose(self, profile):
        """The caps of profile (an index in P.PROFILES) from now on."""
        self.profile = profile
        # the depth cap, kept: the control tick reads it every tick (cap_um, no call)
        self.cap_um = min(self.board_um, P.PROFILES[self.profile][1])

    def depth_um(self):
        return self.cap_um

    def rate_chz(self):
        return P.PROFILES[self.profile][2]

    def beyond(self, i, value):
        """Why value of parameter i is beyond the active caps, or None."""
        name = P.PROFILES[self.profile][0]
        if i == P.P_DEPTH and value > self.depth_um():
            if self.depth_um() < self.board_um:
                return "depth %s mm beyond the %s profile's cap of %s mm" % (
                    P.format_fixed(value, 3), name, P.format_fixed(self.depth_um(), 3))
            return "depth %s mm beyond the cap of %s mm" % (
                P.format_fixed(value, 3), P.format_fixed(self.board_um, 3))
        if i == P.P_RATE and value > self.rate_chz():
            return "rate %s Hz beyond the %s profile's cap of %s Hz" % (
                P.format_fixed(value, 2), name, P.format_fixed(self.rate_chz(), 2))
        return None
