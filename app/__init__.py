"""The engine: one FastAPI application, master or edge by ``ENGINE_EDGE_ID``.

What lives where, and what each part may import of the rest (data flows one way:
routers → services → I/O; nothing imports back up):

- ``main``, ``__main__``: composition and the command line; may import anything.
- ``routers/``: routes (parse, authorize, map errors); node, services, runtime, store,
  models, errors, metrics. Never master/, edge/ or link/.
- ``master/``, ``edge/``: what only one role runs; node, services, control, link,
  runtime, store, settings, errors. Never each other, never routers/.
- ``node``: what a process shares; services, runtime, store, metrics, settings.
- ``services/``: the engine's behaviour; control, runtime, store, models, errors.
  Never FastAPI, routers/, the roles or link/.
- ``control/`` (pure decisions), ``store/``, ``sim/``, ``status/``: nothing of the
  engine outside themselves.
- ``link/``, ``runtime/``: errors only.
- ``models`` (control only), ``errors``, ``settings``, ``metrics``, ``urls``,
  ``logging_filters``, ``version``: leaves the others build on.
- ``drivers/``: the bundled driver repository, package data seeded into
  ``ENGINE_DRIVERS_PATH`` (no package: drivers import ``app.runtime`` and
  ``app.errors``, like any integrator's).
- ``demo``, ``node_process``: servers as child processes (``python -m app serve``) and
  the simulated devices; sim and node_process, never the web stack in-process.
"""
