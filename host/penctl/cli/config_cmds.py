"""Settings and treatment profiles saved on the board: `pen config`, `pen profile`."""
