"""Unit tests of ``app/master/``."""
