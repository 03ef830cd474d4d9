"""The four Whistle services; each runs as ``python -m services.<name>``."""
