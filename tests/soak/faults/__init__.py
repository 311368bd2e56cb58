"""The fault-schedule run and its checker (tests/soak/README.md).

``plan`` draws the faults from a seed, ``cluster`` and ``actions`` run the site and
apply them, ``observe`` and ``devices`` record what happened in the ``history``,
and ``check`` reads that history and reports every violation.
"""
