"""The witness question and answer, over HTTP against a real ASGI app."""

from __future__ import annotations

import asyncio
import contextlib
import ssl

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from app.services.witness import QuestionRefused, Witness, answer
from tests.support.tls import expired_server

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


def answering(status: int, **headers: str) -> Starlette:
    async def endpoint(request: Request) -> Response:
        return Response(status_code=status, headers=headers)

    return Starlette(routes=[Route("/api/edges/{edge_id}/witness", endpoint)])


async def test_any_answer_of_the_engine_proves_it_alive() -> None:
    for status in (404, 500, 503):
        result, detail = await ask(answering(status, **{"X-Engine-Node": "master"}), [SECRET])
        assert (result, detail) == ("refused", f"http://edge answered {status}")


async def test_a_gateway_answering_for_a_silent_server_is_no_sign_of_life() -> None:
    result, detail = await ask(answering(502), [SECRET])
    assert (result, detail) == ("unreachable", "http://edge: a gateway answered 502")


async def test_a_certificate_this_side_does_not_trust_is_reported_as_tls() -> None:
    authority, server_tls = expired_server()

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(OSError, asyncio.IncompleteReadError):
            await reader.read(1)
        writer.close()

    server = await asyncio.start_server(handler, "127.0.0.1", 0, ssl=server_tls)
    port = server.sockets[0].getsockname()[1]
    client_tls = ssl.create_default_context()
    authority.configure_trust(client_tls)
    try:
        async with httpx.AsyncClient(verify=client_tls) as client:
            report = await Witness(client, asker="edge:edge-1", timeout=2).ask(
                f"https://127.0.0.1:{port}", EDGE, [SECRET]
            )
    finally:
        server.close()
    assert report.result == "tls" and not report.verified
    assert "certificate has expired" in (report.detail or "")
