"""A Python client generated from the committed OpenAPI document drives a master and an edge.

This is how many users meet the API: ``openapi-python-client`` turns
``openapi/openapi.json`` into typed models and one function per operation, and they
call those. Everything here goes through the generated code, against real server
processes: paging with a filter that holds a space, a merge patch that changes one
field and leaves every other as it was, the client routing contract (a 307 followed with
the token in the query, as the README says, and ``Prefer: routing=proxy``), and the
typed control document through a takeover and a restore.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import pytest

from tests.integration.sites import ECHO, TOKEN, Site, open_site
from tests.support.generated_client import GeneratedClient, generated_client


@pytest.fixture(scope="module")
def generated() -> GeneratedClient:
    return generated_client()


def test_the_generator_prints_no_warning(generated: GeneratedClient) -> None:
    printed = [line for line in generated.output.splitlines() if line.strip()]
    assert printed and all(line.startswith("Generating ") for line in printed), printed


def link_query(link: str) -> dict[str, str]:
    """The query of a ``Link: <…>; rel="next"`` as ``@placeos/ts-client`` reads it: split
    on ``&`` and ``=``, each part decoded by ``decodeURIComponent`` (a ``+`` stays one)."""
    target = link.split(";")[0].strip().removeprefix("<").removesuffix(">")
    pairs = (part.partition("=") for part in urlsplit(target).query.split("&"))
    return {unquote(key): unquote(value) for key, _, value in pairs}


async def test_a_generated_client_drives_a_master_and_an_edge(
    tmp_path: Path, generated: GeneratedClient
) -> None:
    g = generated
    async with open_site(tmp_path) as site:
        edge = await site.add_edge("Sydney", driver=ECHO, module={"name": "Echo"}, api_url=True)
        client = g.package.AuthenticatedClient(
            base_url=site.master.url, token=TOKEN, verify_ssl=site.verify
        )
        async with client:
            meeting_rooms = await page_systems_filtered_by_words(g, client)
            await list_every_system(g, client, meeting_rooms)
            await patch_an_edge_and_read_it_back(g, client)
            await exec_on_the_edges_room(g, site, edge.system_id, edge.id)
            await take_over_and_restore(g, client, edge.id)
        for server in (site.master, edge.process):
            await read_ready(g, server.url, site)


async def page_systems_filtered_by_words(g: GeneratedClient, client: Any) -> list[str]:
    create_system = g.operation("systems", "create_system")
    for index in range(3):
        body = g.model("SystemCreate")(name=f"meeting room {index}")
        assert (await create_system.asyncio_detailed(client=client, body=body)).status_code == 201

    query = g.operation("placeos", "placeos_query_systems")
    first = await query.asyncio_detailed(client=client, q="meeting room", limit=2)
    assert first.status_code == 200 and first.headers["x-total-count"] == "3"
    assert len(first.parsed) == 2
    asked = link_query(first.headers["link"])
    assert asked["q"] == "meeting room", first.headers["link"]
    second = await query.asyncio_detailed(
        client=client, q=asked["q"], limit=int(asked["limit"]), offset=int(asked["offset"])
    )
    assert second.status_code == 200 and "link" not in second.headers
    found = [system.name for system in [*first.parsed, *second.parsed]]
    assert all(system.additional_properties == {} for system in first.parsed)
    assert sorted(found) == [f"meeting room {i}" for i in range(3)]
    return found


async def list_every_system(g: GeneratedClient, client: Any, expected: list[str]) -> None:
    listing = g.operation("systems", "list_systems")
    names, after = [], g.package.types.UNSET
    while True:
        page = await listing.asyncio(client=client, limit=2, after=after)
        names += [system.name for system in page.items]
        if not page.next_:
            break
        after = page.next_
    assert sorted(n for n in names if n.startswith("meeting")) == sorted(expected)


async def patch_an_edge_and_read_it_back(g: GeneratedClient, client: Any) -> None:
    create = g.operation("edges", "create_edge")
    created = await create.asyncio(
        client=client,
        body=g.model("EdgeCreate")(
            name="Melbourne",
            description="level 3",
            timeout=10.0,
            failover=False,
            window_start="0 2 * * *",
            window_length=3600.0,
            timezone="Australia/Melbourne",
            api_url="http://127.0.0.1:9",
        ),
    )
    assert created.secret and created.timeout == 10.0
    before = created.to_dict()

    update = g.operation("edges", "update_edge")
    patched = await update.asyncio_detailed(
        created.id, client=client, body=g.model("EdgePatch")(name="Melbourne CBD")
    )
    assert patched.status_code == 200, patched.content
    read = await g.operation("edges", "get_edge").asyncio(created.id, client=client)
    after = read.to_dict()
    assert after["name"] == "Melbourne CBD"
    unchanged = set(before) - {"name", "version", "updated_at", "secret"}
    assert {k: after.get(k) for k in unchanged} == {k: before[k] for k in unchanged}
    assert after["version"] != before["version"]

    reset = await update.asyncio(
        created.id, client=client, body=g.model("EdgePatch")(description=None)
    )
    assert reset.description == "" and reset.timeout == 10.0

    stale = await update.asyncio_detailed(
        created.id,
        client=client,
        body=g.model("EdgePatch")(timeout=5.0),
        if_match=f'"{before["version"]}"',
    )
    assert stale.status_code == 412 and stale.parsed.status == 412


async def exec_on_the_edges_room(
    g: GeneratedClient, site: Site, system_id: str, edge_id: str
) -> None:
    exec_system = g.operation("systems", "exec_system")
    body = g.model("SystemExecBody")(module="Echo", index=1, method="echo", args=["hi"])
    edge_node = f"edge:{edge_id}"

    def client(**options: Any) -> Any:
        return g.package.AuthenticatedClient(
            base_url=site.master.url, token=TOKEN, verify_ssl=site.verify, **options
        )

    async with client() as plain:
        redirect = await exec_system.asyncio_detailed(system_id, client=plain, body=body)
    assert redirect.status_code == 307
    assert redirect.parsed.location == redirect.headers["location"]
    assert redirect.headers["location"].startswith(site.edges["Sydney"].process.url)

    # README, Client routing: the token in the query survives the redirect to the edge.
    following = client(follow_redirects=True, httpx_args={"params": {"access_token": TOKEN}})
    async with following:
        followed = await exec_system.asyncio_detailed(system_id, client=following, body=body)
    assert followed.status_code == 200, followed.content
    assert followed.parsed.result == "hi"
    assert followed.headers["x-engine-node"] == edge_node

    async with client() as plain:
        proxied = await exec_system.asyncio_detailed(
            system_id, client=plain, body=body, prefer="routing=proxy"
        )
    assert proxied.status_code == 200, proxied.content
    assert proxied.parsed.result == "hi"
    assert proxied.headers["preference-applied"] == "routing=proxy"
    assert proxied.headers["x-engine-node"] == edge_node
    assert proxied.headers["via"] == "1.1 master"


async def take_over_and_restore(g: GeneratedClient, client: Any, edge_id: str) -> None:
    ControlDocument = g.model("ControlDocument")
    control = await g.operation("control", "get_edge_control").asyncio(edge_id, client=client)
    assert isinstance(control, ControlDocument)
    assert (control.controller.value, control.online) == ("edge", True)
    assert control.additional_properties == {}, "every field of the control document is typed"
    assert control.link_error is None and control.pending is None

    taken = await g.operation("control", "takeover_edge").asyncio(edge_id, client=client)
    assert isinstance(taken, ControlDocument), taken
    assert taken.controller.value == "master" and taken.epoch > control.epoch
    restored = await g.operation("control", "restore_edge").asyncio(edge_id, client=client)
    assert isinstance(restored, ControlDocument), restored
    assert restored.controller.value == "edge" and restored.epoch > taken.epoch


async def read_ready(g: GeneratedClient, url: str, site: Site) -> None:
    """Each role's ready body is typed field by field (no token needed)."""
    async with g.package.Client(base_url=url, verify_ssl=site.verify) as anonymous:
        ready = await g.operation("health", "get_ready").asyncio(client=anonymous)
    assert isinstance(ready, g.model("Ready")), ready
    assert ready.additional_properties == {}, f"{url}: {ready.additional_properties}"
