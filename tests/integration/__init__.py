"""Integration tests: real server processes on loopback (``app.node_process``).

Sites of a master and edges come from ``tests.integration.sites``; they import
``app`` and ``tests.support`` besides.
"""
