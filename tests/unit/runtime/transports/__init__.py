"""Unit tests of ``app/runtime/transports/``."""
