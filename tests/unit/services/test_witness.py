"""The witness question and answer, over HTTP against a real ASGI app."""

from __future__ import annotations

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from app.services.witness import QuestionRefused, Witness, answer

SECRET = "s3cret"
EDGE = "edge-1"


def witness_app(*, controls: bool, secrets: list[str], tamper: bool = False) -> Starlette:
    async def endpoint(request: Request) -> Response:
        params = request.query_params
        try:
            body = answer(
                request.path_params["edge_id"],
                nonce=params["nonce"],
                proof=params["proof"],
                asker=params["asker"],
                secrets=secrets,
                controls=controls,
                node="edge:edge-1",
            )
        except QuestionRefused:
            return JSONResponse({"detail": "wrong proof"}, status_code=401)
        if tamper:
            body["controls"] = not controls
        return JSONResponse(body)

    return Starlette(routes=[Route("/api/edges/{edge_id}/witness", endpoint)])


async def ask(app: Starlette, secrets: list[str]) -> tuple[str, str | None]:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app)) as client:
        report = await Witness(client, asker="master", timeout=1).ask("http://edge", EDGE, secrets)
    return report.result, report.detail


async def test_a_witness_that_controls_says_so_with_a_proof() -> None:
    assert await ask(witness_app(controls=True, secrets=[SECRET]), [SECRET]) == (
        "controls",
        "edge:edge-1 controls the location",
    )
    result, _ = await ask(witness_app(controls=False, secrets=[SECRET]), [SECRET])
    assert result == "does_not_control"


async def test_an_asker_without_the_secret_learns_nothing() -> None:
    result, detail = await ask(witness_app(controls=True, secrets=[SECRET]), ["guess"])
    assert result == "refused"
    assert "refused the question (401)" in (detail or "")


async def test_the_asker_tries_the_previous_secret_during_a_rotation() -> None:
    app = witness_app(controls=True, secrets=["old"])
    assert (await ask(app, ["new", "old"]))[0] == "controls"


async def test_a_forged_answer_is_not_a_sign_of_life() -> None:
    result, detail = await ask(witness_app(controls=False, secrets=[SECRET], tamper=True), [SECRET])
    assert (result, detail) == ("refused", "http://edge answered with a wrong proof")


async def test_an_unreachable_witness_is_reported_so() -> None:
    async with httpx.AsyncClient() as client:
        report = await Witness(client, asker="master", timeout=0.5).ask(
            "http://127.0.0.1:9", EDGE, [SECRET]
        )
    assert report.result == "unreachable" and report.last_alive_at is None
