# Host side only, never deployed: it makes this tree the package penctl.firmware, so the
# host imports the modules both sides share (protocol, integrity, app_mode) as ordinary
# modules and finds the files it deploys with importlib.resources. On the board every
# module is top-level and imports its siblings by plain name.
