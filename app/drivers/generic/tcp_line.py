"""A device speaking one line of text per command and per reply, over TCP."""

from __future__ import annotations

from app.runtime import DeviceDriver


class TcpLine(DeviceDriver):
    """Sends a line of text and returns the line the device answers with.

    Status: ``connected`` (bool) and ``last_reply`` (the last line received).
    Settings: ``encoding`` (default ``utf-8``) and those of ``DeviceDriver``.
    """

    async def send(self, text: str) -> str:
        """Write ``text`` and a newline; return the next line received, without its newline."""
        encoding = self.setting("encoding", "utf-8")
        reply = (await self.send_request(text.encode(encoding) + b"\n")).decode(
            encoding, errors="replace"
        )
        self.status["last_reply"] = reply
        return reply
