"""Tests against real Couchbase clusters: skipped unless configured (make test-couchbase).

Imports ``app.store`` only.
"""
