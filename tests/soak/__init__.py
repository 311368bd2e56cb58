"""Long runs outside ``make test``: real processes put through faults for minutes.

``python -m tests.soak.faults`` is the fault-schedule run (tests/soak/README.md).
"""
