"""Tests against real Couchbase clusters: skipped unless configured (make test-couchbase)."""
