"""Splitting a byte stream into the frames of a delimited protocol."""

from __future__ import annotations

from app.runtime.transports.errors import FrameTooLong


class DelimiterFramer:
    """Turns the chunks a socket delivers into whole frames ending with ``delimiter``.

    Frames are returned without the delimiter, with any ``strip`` bytes removed from
    both ends (the stray ``\\r`` of CRLF or LFCR line endings). A frame longer than
    ``max_length`` is dropped up to its delimiter, so the frame after it arrives intact.
    """

    def __init__(
        self, delimiter: bytes = b"\n", max_length: int = 65536, strip: bytes = b"\r"
    ) -> None:
        if not delimiter:
            raise ValueError("the delimiter must not be empty")
        if max_length < 1:
            raise ValueError("max_length must be positive")
        self._delimiter = delimiter
        self._max_length = max_length
        self._strip = strip
        self._buffer = bytearray()
        self._skipping = False

    def feed(self, data: bytes) -> list[bytes]:
        """Add received bytes and return the frames they complete.

        Raises :class:`FrameTooLong` (holding this call's good frames) when a frame
        outgrows ``max_length``; it is raised once per over-long frame.
        """
        self._buffer += data
        frames: list[bytes] = []
        too_long = False
        while (end := self._buffer.find(self._delimiter)) >= 0:
            frame = bytes(self._buffer[:end])
            del self._buffer[: end + len(self._delimiter)]
            if self._skipping:
                self._skipping = False
            elif len(frame) > self._max_length:
                too_long = True
            else:
                frames.append(frame.strip(self._strip))
        if self._cannot_fit(self._buffer):
            self._buffer.clear()
            too_long = too_long or not self._skipping
            self._skipping = True
        if too_long:
            raise FrameTooLong(self._max_length, frames)
        return frames

    def reset(self) -> None:
        """Forget any partial frame (after a reconnect, the old stream is gone)."""
        self._buffer.clear()
        self._skipping = False

    def _cannot_fit(self, partial: bytearray) -> bool:
        """Whether a partial frame is already too long, whatever completes it.

        Its last bytes may be the start of a multi-byte delimiter, so they do not count.
        """
        return len(partial) - (len(self._delimiter) - 1) > self._max_length
