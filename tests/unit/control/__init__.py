"""Unit tests of ``app/control/``."""
