"""Unit tests of ``app/edge/``."""
