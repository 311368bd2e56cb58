"""Client routing at the HTTP layer: redirects, the reverse proxy and its failures."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

import httpx
import pytest

from app.main import compose, create_app
from app.node import Node
from app.node_process import free_port
from app.services.routing import Placement
from app.settings import Settings
from tests.conftest import ADMIN_TOKEN
from tests.support.upstream import Answer, Upstream
from tests.support.wait import wait_until

EDGE_URL = "http://edge.test"
EXEC = "/api/systems/sys-1/exec"


@dataclass
class Elsewhere:
    """A placement source saying an edge controls everything."""

    placement_now: Placement

    async def placement(self, location: str | None) -> Placement:
        return self.placement_now


@pytest.fixture
async def routed(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[tuple[httpx.AsyncClient, Node]]:
    # The proxy waits request_timeout_s + 2 s for an answer: 2.2 s here.
    cors = settings.model_copy(
        update={"cors_origins": ["https://panel.example"], "request_timeout_s": 0.2}
    )
    node = compose(cors)
    app = create_app(cors, node=node)
    await node.start()
    await wait_until(lambda: node.boot.ready, timeout=10)
    monkeypatch.setattr(node, "placement", Elsewhere(Placement("elsewhere", "edge 'e1'", EDGE_URL)))
    try:
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app, client=("10.1.2.3", 5000)),
            base_url="http://master.test",
            headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
        ) as client:
            yield client, node
    finally:
        await node.stop()


async def test_redirect_keeps_path_and_query(routed: tuple[httpx.AsyncClient, Node]) -> None:
    client, _ = routed
    response = await client.get("/api/systems/sys-1/funcs?module=Display&index=2")
    assert response.status_code == 307
    assert (
        response.headers["location"] == f"{EDGE_URL}/api/systems/sys-1/funcs?module=Display&index=2"
    )
    assert response.headers["x-engine-node"] == "master"
    assert "preference-applied" not in response.headers


@pytest.fixture
async def upstream(routed: tuple[httpx.AsyncClient, Node]) -> AsyncIterator[Upstream]:
    """A real server the master proxies to, standing in for the edge."""
    async with Upstream() as server:
        routed[1].placement = Elsewhere(Placement("elsewhere", "edge 'e1'", server.url))
        yield server


@pytest.mark.parametrize("chunked", [False, True])
async def test_proxy_on_request(
    routed: tuple[httpx.AsyncClient, Node], upstream: Upstream, chunked: bool
) -> None:
    client, _ = routed
    upstream.answer = Answer.json(200, {"result": "hi"}, {"X-Engine-Node": "edge:e1"})
    upstream.answer.chunked = chunked
    for _ in range(2):
        response = await client.post(
            EXEC + "?verbose=1",
            json={"module": "Display", "method": "send"},
            headers={"Prefer": "routing=proxy"},
        )
        assert response.status_code == 200
        assert response.json() == {"result": "hi"}
        assert response.headers["preference-applied"] == "routing=proxy"
        assert response.headers["via"] == "1.1 master"
    assert upstream.connections == 1, "the second call reuses the kept-alive connection"
    sent = upstream.received[-1]
    assert (sent.method, sent.path) == ("POST", EXEC + "?verbose=1")
    assert sent.headers["x-forwarded-for"] == "10.1.2.3"
    assert sent.headers["x-forwarded-host"] == "master.test"
    assert sent.headers["x-forwarded-proto"] == "http"
    assert sent.headers["authorization"] == f"Bearer {ADMIN_TOKEN}"
    assert sent.headers["via"] == "1.1 master"
    assert sent.headers["content-length"] == str(len(sent.body))
    assert b'"method":"send"' in sent.body.replace(b" ", b"")


@pytest.mark.parametrize(
    ("failure", "status"),
    [
        ("refused", 503),
        (Answer(200, delay=3.0), 504),
        (Answer(502, body=b"bad gateway from a load balancer"), 502),
    ],
)
async def test_proxy_failures_name_the_controller(
    routed: tuple[httpx.AsyncClient, Node],
    upstream: Upstream,
    failure: Answer | str,
    status: int,
) -> None:
    client, node = routed
    if isinstance(failure, Answer):
        upstream.answer = failure
    else:
        closed = f"http://127.0.0.1:{free_port()}"
        node.placement = Elsewhere(Placement("elsewhere", "edge 'e1'", closed))
    response = await client.post(EXEC, json={}, headers={"Prefer": "routing=proxy"})
    assert response.status_code == status
    assert response.headers["content-type"].startswith("application/problem+json")
    assert "edge 'e1'" in response.json()["detail"]
    assert response.json()["controller"] == "edge 'e1'"


async def test_an_engine_error_upstream_passes_through(
    routed: tuple[httpx.AsyncClient, Node], upstream: Upstream
) -> None:
    client, _ = routed
    upstream.answer = Answer.json(
        500,
        {"title": "Driver Error", "status": 500, "detail": "projector on fire"},
        {"X-Engine-Node": "edge:e1", "Content-Type": "application/problem+json"},
    )
    response = await client.post(EXEC, json={}, headers={"Prefer": "routing=proxy"})
    assert response.status_code == 500
    assert response.json()["detail"] == "projector on fire"


async def test_unreachable_controller_is_503_with_retry_after(
    routed: tuple[httpx.AsyncClient, Node], monkeypatch: pytest.MonkeyPatch
) -> None:
    client, node = routed
    monkeypatch.setattr(
        node,
        "placement",
        Elsewhere(
            Placement(
                "elsewhere",
                "edge 'e1'",
                EDGE_URL,
                reachable=False,
                reason="edge disconnected; the master takes over at 12:00",
                retry_after=4.2,
            )
        ),
    )
    response = await client.post(EXEC, json={})
    assert response.status_code == 503
    assert response.headers["retry-after"] == "4"
    assert "edge disconnected" in response.json()["detail"]


async def test_configuration_is_not_routed_on_the_master(
    routed: tuple[httpx.AsyncClient, Node],
) -> None:
    client, _ = routed
    response = await client.post("/api/edges", json={"name": "x"})
    assert response.status_code == 201


async def test_cross_origin_preflight_and_redirect(
    routed: tuple[httpx.AsyncClient, Node],
) -> None:
    client, _ = routed
    preflight = await client.options(
        EXEC,
        headers={
            "Origin": "https://panel.example",
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization, content-type",
        },
    )
    assert preflight.status_code == 200
    assert preflight.headers["access-control-allow-origin"] == "https://panel.example"
    redirected = await client.post(EXEC, json={}, headers={"Origin": "https://panel.example"})
    assert redirected.status_code == 307
    assert redirected.headers["access-control-allow-origin"] == "https://panel.example"
    exposed = redirected.headers["access-control-expose-headers"].lower()
    for header in ("location", "x-engine-node", "etag"):
        assert header in exposed


async def test_authentication_comes_before_routing(
    routed: tuple[httpx.AsyncClient, Node],
) -> None:
    client, _ = routed
    for method, path, authorization in [
        ("POST", EXEC, ""),
        ("POST", "/api/systems/sys-unknown/exec", ""),
        ("GET", "/api/modules/mod-1/state", "Bearer wrong"),
        ("GET", "/api/engine/v2/systems/sys-1/Display_1", ""),
    ]:
        response = await client.request(
            method,
            path,
            json={} if method == "POST" else None,
            headers={"Authorization": authorization},
        )
        assert response.status_code == 401, (path, response.text)
        assert "location" not in response.headers


async def test_routed_answers_are_counted_under_their_operation(
    routed: tuple[httpx.AsyncClient, Node],
) -> None:
    client, node = routed
    assert (await client.get("/api/modules/mod-1/state")).status_code == 307
    assert (await client.post(EXEC, json={})).status_code == 307
    metrics = node.metrics.render().decode()
    assert 'method="GET",operation="getModuleState",status="307"' in metrics
    assert 'method="POST",operation="execSystem",status="307"' in metrics
    assert 'operation="unmatched"' not in metrics


async def test_a_proxied_answer_carries_each_header_once(
    routed: tuple[httpx.AsyncClient, Node], upstream: Upstream
) -> None:
    client, _ = routed
    upstream.answer = Answer.json(
        200,
        {"result": 1},
        {
            "X-Engine-Node": "edge:e1",
            "Date": "Wed, 01 Jan 2025 00:00:00 GMT",
            "Server": "uvicorn",
        },
    )
    response = await client.post(EXEC, json={}, headers={"Prefer": "routing=proxy"})
    assert response.json() == {"result": 1}
    # This server sets its own date and server headers (uvicorn does, in front of the app).
    assert "date" not in response.headers and "server" not in response.headers
    assert response.headers.get_list("x-engine-node") == ["edge:e1"]
    assert response.headers["content-length"] == str(len(response.content))


async def test_a_proxied_request_passes_the_framework_by(
    routed: tuple[httpx.AsyncClient, Node], upstream: Upstream
) -> None:
    """The body is passed on unread: FastAPI on the master would refuse it (422)."""
    client, node = routed
    upstream.answer = Answer.json(422, {"detail": "edge says no"}, {"X-Engine-Node": "edge:e1"})
    response = await client.post(
        EXEC,
        content=b'{"module": "Display", not json',
        headers={"Prefer": "routing=proxy", "Content-Type": "application/json"},
    )
    assert response.status_code == 422
    assert response.json() == {"detail": "edge says no"}
    assert upstream.received[-1].body == b'{"module": "Display", not json'
    metrics = node.metrics.render().decode()
    assert 'method="POST",operation="execSystem",status="422"' in metrics


async def test_a_proxied_request_authenticates_as_every_request_does(
    routed: tuple[httpx.AsyncClient, Node], upstream: Upstream
) -> None:
    client, _ = routed
    upstream.answer = Answer.json(200, {"result": 1}, {"X-Engine-Node": "edge:e1"})
    proxy = {"Prefer": "routing=proxy"}
    anonymous = httpx.AsyncClient(transport=client._transport, base_url=str(client.base_url))
    async with anonymous:
        for headers, query, status in [
            ({"X-API-Key": ADMIN_TOKEN}, "", 200),
            ({}, f"?access_token={ADMIN_TOKEN}", 200),
            ({}, "", 401),
            ({"Authorization": "Bearer wrong"}, "", 401),
            # The bearer header wins over a valid key, as for every other route.
            ({"Authorization": "Bearer wrong", "X-API-Key": ADMIN_TOKEN}, "", 401),
            ({"Authorization": f"Basic {ADMIN_TOKEN}"}, "", 401),
        ]:
            before = len(upstream.received)
            response = await anonymous.post(EXEC + query, json={}, headers={**proxy, **headers})
            assert response.status_code == status, (headers, query, response.text)
            assert len(upstream.received) == before + (status == 200)


def test_routed_paths_follow_the_router_order() -> None:
    from fastapi import Depends, FastAPI
    from starlette.staticfiles import StaticFiles

    from app.routers.routing import RoutedBy, RoutedPaths

    app = FastAPI()
    by_system = RoutedBy("system", "system_id")

    @app.get("/x/{system_id}/special")
    async def special(system_id: str) -> None: ...

    @app.get("/x/{system_id}/{name}", dependencies=[Depends(by_system)])
    async def routed_route(system_id: str, name: str) -> None: ...

    app.mount("/assets", StaticFiles(directory="."))

    @app.get("/assets/{system_id}", dependencies=[Depends(by_system)])
    async def shadowed(system_id: str) -> None: ...

    paths = RoutedPaths(app)
    found = paths.declaration("GET", "/x/s1/power")
    assert found is not None
    assert found[0].declaration is by_system
    assert found[1] == {"system_id": "s1", "name": "power"}
    assert paths.declaration("GET", "/x/s1/special") is None, "an earlier route takes it"
    assert paths.declaration("POST", "/x/s1/power") is None, "not the route's method"
    assert paths.declaration("GET", "/assets/s1") is None, "the mount takes it"


def test_the_application_routes_runtime_requests_only(settings: Settings) -> None:
    from app.routers.routing import RoutedPaths

    paths = RoutedPaths(create_app(settings))
    for method, path in [
        ("POST", "/api/systems/sys-1/exec"),
        ("GET", "/api/modules/mod-1/state"),
        ("POST", "/api/engine/v2/systems/sys-1/Display_1/power"),
    ]:
        assert paths.declaration(method, path) is not None, path
    for method, path in [
        ("GET", "/api/systems/sys-1"),
        ("PATCH", "/api/systems/sys-1"),
        ("GET", "/api/systems/sys-1/exec"),
        ("GET", "/api/engine/v2/systems/sys-1"),
    ]:
        assert paths.declaration(method, path) is None, path


async def test_a_proxied_body_over_the_limit_is_refused(
    routed: tuple[httpx.AsyncClient, Node], upstream: Upstream
) -> None:
    client, node = routed

    async def streamed() -> AsyncIterator[bytes]:
        for _ in range(5):
            yield b" " * node.settings.max_document_bytes

    response = await client.post(EXEC, content=streamed(), headers={"Prefer": "routing=proxy"})
    assert response.status_code == 413
    assert upstream.received == []
