"""Unit tests of the test helpers in ``tests/support/`` that deserve their own."""
