"""Faults injected into real server processes under load: crashes and an unwritable store."""
