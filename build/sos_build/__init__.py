"""sos-build: turns a brand folder into the branded one-file agent."""
