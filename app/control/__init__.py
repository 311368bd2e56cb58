"""Who controls an edge's devices: the high-availability rules as pure code.

Immutable snapshots in, decisions and actions out; time arrives as arguments. The
master's and the edge's I/O layers feed events in and execute the actions.

* ``negotiation``: who wins when an edge connects;
* ``windows``: restore windows from a CRON expression;
* ``state`` and ``supervisor``: the master's per-edge state machine;
* ``edge``: when the edge runs its own modules.

Imports nothing of the engine outside ``app.control``.
"""
