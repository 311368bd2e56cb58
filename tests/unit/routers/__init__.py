"""Unit tests of ``app/routers/``."""
