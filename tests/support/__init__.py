"""What many tests use: waiting on conditions, clients of the websockets, the pausable
proxy, fault and load generators, the Couchbase stand-in, the demo as a process.

Imports ``app`` and ``tests.support`` only, never a test package; the benchmarks use
``tests.support.wait`` too.
"""
