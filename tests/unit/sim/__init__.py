"""Unit tests of ``app/sim/``."""
