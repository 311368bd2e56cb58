"""The store contract suite: every backend (SQLite, the Couchbase store on a stand-in
cluster, a real cluster when configured) against the same tests.

Imports ``app.store`` and ``tests.support.couchbase_standin``.
"""
