"""Unit tests of ``app/runtime/``."""
