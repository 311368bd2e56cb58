"""Unit tests, one package per package of ``app/`` (``tests/unit/X`` tests ``app/X``).

In-process, on loopback at most. They import ``app``, ``tests.support`` and the
fixtures of sibling unit packages (``tests.unit.routers``, ``tests.unit.runtime``).
"""
