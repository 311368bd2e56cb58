"""The test suite (``make test``): unit tests mirroring ``app/``, then real processes.

Tests import ``app`` and ``tests.support``; a test package imports another only for
its shared fixtures (``tests.integration.sites``, a sibling's ``conftest``).
"""
