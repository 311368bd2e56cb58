"""Unit tests of ``app/link/``."""
