"""The witness: asking the other side, over its public API, whether it controls a location.

Before either side takes control because the link is down, it asks the other: the
master asks the edge at its ``api_url``, the edge asks the master at
``ENGINE_MASTER_URL``. The question carries a fresh nonce and a proof that the asker
knows the edge's secret; the answer carries an HMAC proof over that nonce and the
answer itself, so nobody without the secret can hold off a failover nor learn
anything. Both roles answer with :func:`answer` and ask with :class:`Witness`.

An answer that is not a witness answer still tells something: a certificate this side
does not trust (``tls``) or any HTTP answer of the engine (``refused``) proves the
other side alive; only no answer at all is ``unreachable`` (the classification of
:mod:`app.link.failures`).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import httpx

from app.control.clock import now_utc
from app.link.auth import new_nonce, verify, witness_answer_proof, witness_question_proof
from app.link.failures import answered_by_engine, certificate_error, describe_tls
from app.models import WitnessResult

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class WitnessReport:
    """What this server last learnt by asking the other side's witness."""

    checked_at: datetime
    result: WitnessResult
    detail: str | None
    last_alive_at: datetime | None

    @property
    def controls(self) -> bool:
        return self.result == "controls"

    @property
    def verified(self) -> bool:
        """A signed answer: the other side said whether it controls the location."""
        return self.result in ("controls", "does_not_control")

    def as_json(self) -> dict[str, Any]:
        return {
            "checked_at": self.checked_at.isoformat(),
            "result": self.result,
            "detail": self.detail,
            "last_alive_at": self.last_alive_at.isoformat() if self.last_alive_at else None,
        }


class QuestionRefused(Exception):
    """The question's proof matches no secret of the edge."""


def answer(
    edge_id: str,
    *,
    nonce: str,
    proof: str,
    asker: str,
    secrets: Sequence[str],
    controls: bool,
    node: str,
) -> dict[str, Any]:
    """The witness's signed answer, or QuestionRefused when the asker's proof is wrong."""
    for secret in secrets:
        if verify(witness_question_proof(secret, edge_id, nonce, asker), proof):
            signed = witness_answer_proof(secret, edge_id, nonce, controls, node)
            return {
                "edge_id": edge_id,
                "node": node,
                "controls": controls,
                "nonce": nonce,
                "proof": signed,
                "at": now_utc().isoformat(),
            }
    raise QuestionRefused(f"a witness question about edge {edge_id!r} carried a wrong proof")


class Witness:
    """Asks another server's witness endpoint whether it controls a location now."""

    def __init__(self, client: httpx.AsyncClient, *, asker: str, timeout: float) -> None:
        self._client = client
        self._asker = asker
        self._timeout = timeout

    async def ask(
        self,
        base_url: str,
        edge_id: str,
        secrets: Sequence[str],
        previous: WitnessReport | None = None,
    ) -> WitnessReport:
        """The answer of the witness at ``base_url``, tried with each secret in turn."""
        result, detail = await self._ask(base_url.rstrip("/"), edge_id, secrets)
        now = now_utc()
        last_alive = previous.last_alive_at if previous is not None else None
        if result == "controls":
            last_alive = now
        return WitnessReport(now, result, detail, last_alive)

    async def _ask(
        self, base_url: str, edge_id: str, secrets: Sequence[str]
    ) -> tuple[WitnessResult, str | None]:
        url = f"{base_url}/api/edges/{edge_id}/witness"
        refusal = "no secret to ask with"
        for secret in secrets:
            nonce = new_nonce()
            params = {
                "nonce": nonce,
                "asker": self._asker,
                "proof": witness_question_proof(secret, edge_id, nonce, self._asker),
            }
            try:
                response = await self._client.get(url, params=params, timeout=self._timeout)
            except httpx.HTTPError as exc:
                tls = certificate_error(exc)
                if tls is not None:
                    return "tls", f"{base_url}: {describe_tls(tls, 'its')}"
                return "unreachable", f"{base_url}: {type(exc).__name__} {exc}".strip()
            status = response.status_code
            if status in (401, 403):
                refusal = f"{base_url} refused the question ({status})"
                continue
            if status != 200:
                if answered_by_engine(status, response.headers):
                    return "refused", f"{base_url} answered {status}"
                return "unreachable", f"{base_url}: a gateway answered {status}"
            try:
                body = response.json()
                controls = bool(body["controls"])
                node = str(body["node"])
                expected = witness_answer_proof(secret, edge_id, nonce, controls, node)
                genuine = body.get("nonce") == nonce and verify(expected, str(body["proof"]))
            except (ValueError, KeyError, TypeError):
                return "refused", f"{base_url} answered something that is not a witness answer"
            if not genuine:
                return "refused", f"{base_url} answered with a wrong proof"
            if controls:
                return "controls", f"{node} controls the location"
            return "does_not_control", f"{node} does not control the location"
        return "refused", refusal
