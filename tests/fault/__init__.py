"""Faults injected into real server processes under load: crashes and an unwritable store.

Imports ``app``, ``tests.support`` and the sites of ``tests.integration.sites``.
"""
