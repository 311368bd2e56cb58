"""Fuzzing: generated and malformed input against the API and the websockets.

Imports ``app``, ``tests.support`` and the sites of ``tests.integration.sites``.
"""
