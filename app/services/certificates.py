"""Certificates that expire soon are reported before they do, on both sides of the link.

An expired certificate stops every peer that verifies it from connecting: the master's
locks its edges out (they keep their devices as they are and keep asking, README:
Architecture), an edge's keeps the master's witness from asking it. Each server
reports its own certificate (``ENGINE_TLS_CERT``) and an edge the master's as its
link last saw it: in ``/api/ready`` (``tls``), as a metric with the expiry timestamp
(``engine_tls_certificate_expiry_timestamp_seconds``), and as a WARNING log line
once it is within ``ENGINE_TLS_EXPIRY_WARNING_S`` of expiring (again every day, and
an ERROR once it has expired).
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from app.metrics import Metrics

log = logging.getLogger(__name__)

#: How often the expiry of each known certificate is looked at again.
CHECK_INTERVAL_S = 3600.0
#: How often a certificate within its warning period is reported again in the log.
REMIND_INTERVAL_S = 24 * 3600.0


@dataclass(frozen=True)
class Certificate:
    """One certificate's identity and end of validity (a POSIX timestamp)."""

    subject: str
    not_after: float

    @classmethod
    def from_pem_file(cls, path: Path) -> Certificate:
        """The first certificate of a PEM file (the server's own, before its chain)."""
        from cryptography import x509  # only a server that serves TLS pays for the import

        cert = x509.load_pem_x509_certificate(path.read_bytes())
        subject = cert.subject.rfc4514_string()
        return cls(subject, cert.not_valid_after_utc.timestamp())

    @classmethod
    def from_peer(cls, peer: Mapping[str, Any]) -> Certificate | None:
        """A verified peer's certificate as ``SSLObject.getpeercert()`` gives it."""
        not_after = peer.get("notAfter")
        if not isinstance(not_after, str):
            return None
        names = [f"{key}={value}" for rdn in peer.get("subject", ()) for key, value in rdn if key]
        return cls(",".join(names), float(ssl.cert_time_to_seconds(not_after)))


class CertificateExpiry:
    """Follows this server's certificate and, on an edge, the master's as last seen."""

    OWN = "own"
    MASTER = "master"

    def __init__(
        self,
        metrics: Metrics,
        *,
        warning_s: float,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._metrics = metrics
        self._warning_s = warning_s
        self._clock = clock
        self._known: dict[str, Certificate] = {}
        #: When each certificate was last reported in the log, and at which level.
        self._logged: dict[str, tuple[float, int]] = {}

    def load_own(self, path: Path | None) -> None:
        """Read this server's certificate; a file that cannot be read is logged, not fatal
        (uvicorn refuses to serve with it anyway)."""
        if path is None:
            return
        try:
            self.saw(self.OWN, Certificate.from_pem_file(path))
        except (OSError, ValueError) as exc:
            log.error("cannot read the expiry of this server's certificate %s: %s", path, exc)

    def saw_master(self, peer: Mapping[str, Any]) -> None:
        """The master's certificate, as the edge's link just verified it."""
        certificate = Certificate.from_peer(peer)
        if certificate is not None:
            self.saw(self.MASTER, certificate)

    def saw(self, which: str, certificate: Certificate) -> None:
        previous = self._known.get(which)
        self._known[which] = certificate
        self._metrics.tls_expiry.labels(which).set(certificate.not_after)
        if previous != certificate:
            self._logged.pop(which, None)
        self._report(which)

    def as_json(self) -> dict[str, Any]:
        """``/api/ready``'s ``tls``: each known certificate, read now."""
        return {
            "warning_s": self._warning_s,
            "certificate": self._describe(self.OWN),
            "master_certificate": self._describe(self.MASTER),
        }

    async def run(self) -> None:
        """Look at every known certificate again each hour (log reminders, expiry)."""
        while True:
            await asyncio.sleep(CHECK_INTERVAL_S)
            for which in list(self._known):
                self._report(which)

    def _describe(self, which: str) -> dict[str, Any] | None:
        certificate = self._known.get(which)
        if certificate is None:
            return None
        left = certificate.not_after - self._clock()
        return {
            "subject": certificate.subject,
            "not_after": datetime.fromtimestamp(certificate.not_after, UTC).isoformat(),
            "expires_in_s": round(left, 3),
            "expiring": left <= self._warning_s,
            "expired": left <= 0,
        }

    def _report(self, which: str) -> None:
        """A WARNING once within the warning period, again daily; an ERROR once expired."""
        certificate = self._known[which]
        now = self._clock()
        left = certificate.not_after - now
        if left > self._warning_s:
            return
        level = logging.ERROR if left <= 0 else logging.WARNING
        last = self._logged.get(which)
        if last is not None and last[1] == level and now - last[0] < REMIND_INTERVAL_S:
            return
        self._logged[which] = (now, level)
        whose = "this server's" if which == self.OWN else f"the {which}'s"
        expiry = datetime.fromtimestamp(certificate.not_after, UTC).isoformat()
        if left <= 0:
            log.error(
                "%s TLS certificate (%s) expired at %s: peers that verify it cannot connect",
                whose,
                certificate.subject,
                expiry,
            )
            return
        log.warning(
            "%s TLS certificate (%s) expires at %s, in %.0f s (within "
            "ENGINE_TLS_EXPIRY_WARNING_S): renew it before peers stop connecting",
            whose,
            certificate.subject,
            expiry,
            left,
        )
