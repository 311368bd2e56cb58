"""Certificates within the warning period are reported before they expire."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import trustme

from app.metrics import Metrics
from app.services.certificates import REMIND_INTERVAL_S, Certificate, CertificateExpiry

DAY = 24 * 3600.0
NOW = datetime(2030, 1, 1, tzinfo=UTC)


class Clock:
    def __init__(self) -> None:
        self.now = NOW.timestamp()

    def __call__(self) -> float:
        return self.now


def certificate_file(tmp_path: Path, not_after: datetime) -> Path:
    issued = trustme.CA().issue_cert(
        "127.0.0.1", not_before=not_after - timedelta(days=90), not_after=not_after
    )
    path = tmp_path / "cert.pem"
    issued.cert_chain_pems[0].write_to_path(str(path))
    return path


def expiry_metric(metrics: Metrics) -> dict[str, float]:
    return {
        sample.labels["certificate"]: sample.value
        for metric in metrics.tls_expiry.collect()
        for sample in metric.samples
    }


def test_a_certificate_far_from_expiry_is_reported_quietly(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    metrics, clock = Metrics(), Clock()
    expiry = CertificateExpiry(metrics, warning_s=14 * DAY, clock=clock)
    not_after = NOW + timedelta(days=30)
    expiry.load_own(certificate_file(tmp_path, not_after))
    own = expiry.as_json()["certificate"]
    assert own["not_after"] == not_after.isoformat()
    assert (own["expiring"], own["expired"]) == (False, False)
    assert own["expires_in_s"] == 30 * DAY
    assert expiry.as_json()["master_certificate"] is None
    assert expiry_metric(metrics) == {"own": not_after.timestamp()}
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


def test_one_within_the_warning_period_is_logged_daily_then_once_expired(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    metrics, clock = Metrics(), Clock()
    expiry = CertificateExpiry(metrics, warning_s=14 * DAY, clock=clock)
    expiry.load_own(certificate_file(tmp_path, NOW + timedelta(days=3)))
    assert expiry.as_json()["certificate"]["expiring"] is True

    def logged() -> list[tuple[int, str]]:
        return [(r.levelno, r.getMessage()) for r in caplog.records if r.levelno >= logging.WARNING]

    assert len(logged()) == 1
    assert logged()[0][0] == logging.WARNING
    assert "this server's TLS certificate" in logged()[0][1]
    assert "ENGINE_TLS_EXPIRY_WARNING_S" in logged()[0][1]
    clock.now += REMIND_INTERVAL_S / 2
    expiry._report(CertificateExpiry.OWN)
    assert len(logged()) == 1, "not again within a day"
    clock.now += REMIND_INTERVAL_S / 2
    expiry._report(CertificateExpiry.OWN)
    assert len(logged()) == 2, "a daily reminder"
    clock.now += 3 * DAY
    expiry._report(CertificateExpiry.OWN)
    assert logged()[-1][0] == logging.ERROR and "expired at" in logged()[-1][1]
    assert expiry.as_json()["certificate"]["expired"] is True


def test_the_masters_certificate_is_read_as_the_link_verified_it() -> None:
    metrics, clock = Metrics(), Clock()
    expiry = CertificateExpiry(metrics, warning_s=14 * DAY, clock=clock)
    expiry.saw_master(
        {
            "subject": ((("commonName", "master.example"),),),
            "notAfter": "Jan  5 00:00:00 2030 GMT",
        }
    )
    master = expiry.as_json()["master_certificate"]
    assert master["subject"] == "commonName=master.example"
    assert (master["expires_in_s"], master["expiring"]) == (4 * DAY, True)
    assert expiry_metric(metrics) == {"master": datetime(2030, 1, 5, tzinfo=UTC).timestamp()}
    expiry.saw_master({})  # nothing readable: nothing changes
    assert Certificate.from_peer({}) is None
    assert expiry.as_json()["master_certificate"] == master
