"""The virtual board's share of the host's CPUs."""

import os
import threading

# A chip has a CPU of its own; the virtual board's VM and the threads that are its world
# share the host's with whatever else runs. Where the OS allows it (root, CAP_SYS_NICE) they
# run ahead of ordinary work, so a busy host starves the board less: under two CPU burners a
# VM waited 0.63 s for a CPU, which a chip never does, and its firmware, seeing its clock
# jump, faulted LINK_LOST. Where it does not, the board copes as before (the watchdog and
# the physics leave out what they waited), only with more to cope with.
CHIP_NICE = -10


def run_as_chip(tid=0):
    """Give a process or thread (0: the calling one) the board's CPU priority if the OS
    allows it; True if it did."""
    try:
        os.setpriority(os.PRIO_PROCESS, tid or threading.get_native_id(), CHIP_NICE)
        return True
    except OSError:
        return False
