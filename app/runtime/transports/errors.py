"""Failures of the transports drivers use to reach their devices."""

from __future__ import annotations


class TransportError(Exception):
    """Base class of every transport failure, so a driver can catch them all at once."""


class NotConnected(TransportError):
    """The connection to the device is down, so nothing can be sent now."""


class FrameTooLong(TransportError):
    """The device sent more than a frame may hold without a delimiter.

    ``frames`` carries the well-formed frames decoded in the same call, so a caller
    that catches this error loses nothing but the over-long frame itself.
    """

    def __init__(self, max_length: int, frames: list[bytes]) -> None:
        super().__init__(f"frame longer than {max_length} bytes discarded")
        self.max_length = max_length
        self.frames = frames


class RequestTimeout(TransportError, TimeoutError):
    """The device did not answer a request in time."""
