# Makes the board definitions the package penctl.board_definitions, so an installed penctl finds its
# *.json files with importlib.resources.
