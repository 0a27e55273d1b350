"""Watching and recording a session: `pen monitor`, `pen record`, `pen plot`."""
