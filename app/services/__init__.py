"""Services: the engine's behaviour, between the routers and the I/O layer."""
