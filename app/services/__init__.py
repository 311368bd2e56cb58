"""Services: the engine's behaviour, between the routers and the I/O layer.

Catalog (CRUD and reference checks), authentication, edge secrets, the module
reconciler, client routing decisions, control documents, housekeeping, status.
May import control, runtime, store, models and errors; never FastAPI, the routers,
the roles (master/, edge/) or the link.
"""
