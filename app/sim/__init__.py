"""Simulated devices for tests and the demo: real servers on loopback.

Run one as a process with ``python -m app.sim.line_device`` or
``python -m app.sim.modbus_device``; each prints ``{"name": ..., "port": ...}`` once
listening and serves until SIGTERM.

Shipped with the package so the demo runs from an installed package; imports nothing
of the engine.
"""
