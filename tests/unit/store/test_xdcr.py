"""XDCR provisioning against Couchbase's REST API, answered with its documented shapes.

The fixtures quote Couchbase Server's documentation: "Getting a Reference" and
"Creating a Reference" (GET/POST /pools/default/remoteClusters), "Pause a Replication"
(an xdcr entry of GET /pools/default/tasks) and "Creating XDCR Replications"
(POST /controller/createReplication, its answer and its 400 errors).
"""

from __future__ import annotations

import argparse
import base64
import socket
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qs

import httpx
import pytest
import respx

from app.store.xdcr import (
    EDGE_PASSWORD_ENV,
    MASTER_PASSWORD_ENV,
    ClusterAccess,
    XdcrError,
    add_cli,
    provision_xdcr,
    replication_filter,
    same_host,
)

MASTER_URL = "http://cb-master.example:8091"
MASTER = ClusterAccess(MASTER_URL, "Administrator", "master-pw")
EDGE = ClusterAccess("http://10.144.220.102:8091", "targetAdministrator", "targetPassword")
UUID = "1ed664057cbaad1e283fe0e6dfa86506"
REPLICATION_ID = f"{UUID}/engine/engine"
FILTER = 'NOT REGEXP_CONTAINS(META().id, "^_engine::") AND type != "edge_secret"'

#: GET /pools/default/remoteClusters, "Getting a Reference" (one entry).
OTHER_REFERENCE = {
    "connectivityStatus": "RC_ERROR",
    "deleted": False,
    "hostname": "10.144.220.103:8091",
    "name": "SecondTarget",
    "secureType": "none",
    "uri": "/pools/default/remoteClusters/SecondTarget",
    "username": "Administrator",
    "uuid": "5ccf771844cd32375df8c4de70e9d44e",
    "validateURI": "/pools/default/remoteClusters/SecondTarget?just_validate=1",
}

#: POST /pools/default/remoteClusters, "Creating a Reference" (without certificates).
EDGE_REFERENCE = {
    "deleted": False,
    "demandEncryption": False,
    "hostname": "10.144.220.102:8091",
    "name": "edge-1",
    "secureType": "none",
    "uri": "/pools/default/remoteClusters/edge-1",
    "username": "targetAdministrator",
    "uuid": UUID,
    "validateURI": "/pools/default/remoteClusters/edge-1?just_validate=1",
}

#: GET /pools/default/tasks, "Pause a Replication": the rebalance entry is always there.
REBALANCE_TASK = {
    "type": "rebalance",
    "status": "notRunning",
    "statusIsStale": False,
    "masterRequestTimedOut": False,
}


def xdcr_task(filter_expression: str = FILTER) -> dict[str, Any]:
    """An xdcr entry of GET /pools/default/tasks, as in "Pause a Replication"."""
    encoded = REPLICATION_ID.replace("/", "%2F")
    return {
        "cancelURI": f"/controller/cancelXDCR/{encoded}",
        "settingsURI": f"/settings/replications/{encoded}",
        "status": "running",
        "replicationType": "xmem",
        "continuous": True,
        "filterExpression": filter_expression,
        "id": REPLICATION_ID,
        "pauseRequested": False,
        "source": "engine",
        "target": f"/remoteClusters/{UUID}/buckets/engine",
        "type": "xdcr",
        "recommendedRefreshPeriod": 10,
        "changesLeft": 0,
        "docsChecked": 3111,
        "docsWritten": 0,
        "maxVBReps": None,
        "errors": [],
    }


class Master:
    """The master cluster's REST API, answering from what it holds."""

    def __init__(self, router: respx.MockRouter) -> None:
        self.references: list[dict[str, Any]] = []
        self.tasks: list[dict[str, Any]] = [REBALANCE_TASK]
        router.get("/pools/default/remoteClusters").mock(
            side_effect=lambda _: httpx.Response(200, json=self.references)
        )
        router.get("/pools/default/tasks").mock(
            side_effect=lambda _: httpx.Response(200, json=self.tasks)
        )
        self.create_reference = router.post("/pools/default/remoteClusters").respond(
            json=EDGE_REFERENCE
        )
        self.edit_reference = router.post(path__startswith="/pools/default/remoteClusters/")
        self.edit_reference.respond(json=EDGE_REFERENCE)
        self.create_replication = router.post("/controller/createReplication").respond(
            json={"id": REPLICATION_ID}
        )
        self.replication_settings = router.post(path__startswith="/settings/replications/")
        self.replication_settings.respond(json={"filterExpression": FILTER})
        self.posts = [
            self.create_reference,
            self.edit_reference,
            self.create_replication,
            self.replication_settings,
        ]


@pytest.fixture
def master() -> Iterator[Master]:
    with respx.mock(base_url=MASTER_URL, assert_all_called=False) as router:
        yield Master(router)


def form(route: respx.Route) -> dict[str, str]:
    fields = parse_qs(route.calls.last.request.content.decode(), keep_blank_values=True)
    return {key: value for key, [value] in fields.items()}


async def provision(edge: ClusterAccess = EDGE, name: str = "edge-1") -> Any:
    return await provision_xdcr(MASTER, edge, name=name, from_bucket="engine", to_bucket="engine")


# --- pure --------------------------------------------------------------------------


def test_filter_keeps_master_only_types_and_local_keys_at_the_master() -> None:
    assert replication_filter() == FILTER
    assert replication_filter(frozenset({"b_secret", "a_secret"})) == (
        'NOT REGEXP_CONTAINS(META().id, "^_engine::") AND type != "a_secret" AND type != "b_secret"'
    )


@pytest.mark.parametrize(
    ("left", "right", "same"),
    [
        ("10.1.2.3:8091", "10.1.2.3", True),
        ("Edge.Example:8091", "edge.example:8091", True),
        ("[::1]:8091", "[::1]", True),
        ("10.1.2.3:18091", "10.1.2.3", False),
        ("10.1.2.3:8091", "10.1.2.4:8091", False),
    ],
)
def test_hosts_compare_with_the_default_port(left: str, right: str, same: bool) -> None:
    assert same_host(left, right) is same


def test_cluster_urls_are_checked() -> None:
    with pytest.raises(XdcrError, match="not a cluster URL"):
        ClusterAccess("cb-master:8091", "u", "p")
    assert "master-pw" not in repr(MASTER)


# --- provisioning ------------------------------------------------------------------


async def test_first_setup_creates_the_reference_and_the_replication(master: Master) -> None:
    master.references = [OTHER_REFERENCE]

    report = await provision()

    assert form(master.create_reference) == {
        "name": "edge-1",
        "hostname": "10.144.220.102:8091",
        "username": "targetAdministrator",
        "password": "targetPassword",
    }
    assert form(master.create_replication) == {
        "fromBucket": "engine",
        "toCluster": "edge-1",
        "toBucket": "engine",
        "replicationType": "continuous",
        "filterExpression": FILTER,
    }
    credentials = base64.b64encode(b"Administrator:master-pw").decode()
    request = master.create_replication.calls.last.request
    assert request.headers["Authorization"] == f"Basic {credentials}"
    assert (report.reference_action, report.replication_action) == ("created", "created")
    assert (report.reference_uuid, report.replication_id) == (UUID, REPLICATION_ID)
    assert report.summary().splitlines() == [
        f"remote cluster reference 'edge-1' -> 10.144.220.102:8091 (uuid {UUID}): created",
        f"replication {REPLICATION_ID}: created",
        f"filter: {FILTER}",
    ]


async def test_running_again_finds_both_and_changes_nothing(master: Master) -> None:
    master.references = [OTHER_REFERENCE, EDGE_REFERENCE]
    master.tasks = [REBALANCE_TASK, xdcr_task()]

    report = await provision()

    assert not any(route.called for route in master.posts)
    assert (report.reference_action, report.replication_action) == ("found", "found")
    assert report.replication_id == REPLICATION_ID


async def test_existing_reference_gets_the_missing_replication(master: Master) -> None:
    master.references = [EDGE_REFERENCE]

    report = await provision()

    assert not master.create_reference.called
    assert form(master.create_replication)["toCluster"] == "edge-1"
    assert (report.reference_action, report.replication_action) == ("found", "created")


async def test_a_reference_to_the_edge_under_another_name_is_reused(master: Master) -> None:
    master.references = [{**EDGE_REFERENCE, "name": "FirstTarget", "hostname": "10.144.220.102"}]

    report = await provision()

    assert not master.create_reference.called
    assert form(master.create_replication)["toCluster"] == "FirstTarget"
    assert (report.reference_name, report.reference_action) == ("FirstTarget", "found")


async def test_a_reference_of_that_name_to_another_host_is_pointed_at_the_edge(
    master: Master,
) -> None:
    master.references = [{**EDGE_REFERENCE, "hostname": "10.144.220.250:8091", "uuid": "old"}]

    report = await provision()

    assert master.edit_reference.calls.last.request.url.path == (
        "/pools/default/remoteClusters/edge-1"
    )
    assert form(master.edit_reference)["hostname"] == "10.144.220.102:8091"
    assert not master.create_reference.called
    assert report.reference_action == "updated"
    assert report.reference_uuid == UUID


async def test_a_deleted_reference_does_not_count(master: Master) -> None:
    master.references = [{**EDGE_REFERENCE, "deleted": True}]

    report = await provision()

    assert master.create_reference.called
    assert report.reference_action == "created"


async def test_a_replication_with_another_filter_gets_ours(master: Master) -> None:
    master.references = [EDGE_REFERENCE]
    master.tasks = [REBALANCE_TASK, xdcr_task(filter_expression="")]

    report = await provision()

    request = master.replication_settings.calls.last.request
    assert request.url.raw_path == f"/settings/replications/{UUID}%2Fengine%2Fengine".encode()
    assert form(master.replication_settings) == {"filterExpression": FILTER}
    assert not master.create_replication.called
    assert report.replication_action == "updated"


async def test_a_replication_to_another_bucket_is_not_ours(master: Master) -> None:
    master.references = [EDGE_REFERENCE]
    master.tasks = [{**xdcr_task(), "target": f"/remoteClusters/{UUID}/buckets/other"}]

    report = await provision()

    assert report.replication_action == "created"


async def test_a_certificate_makes_the_reference_fully_encrypted(master: Master) -> None:
    pem = "-----BEGIN CERTIFICATE-----\nMIIDJzCC\n-----END CERTIFICATE-----\n"
    edge = ClusterAccess(EDGE.url, EDGE.username, EDGE.password, certificate=pem)

    await provision(edge)

    sent = form(master.create_reference)
    assert (sent["demandEncryption"], sent["secureType"], sent["certificate"]) == ("1", "full", pem)


# --- failures ----------------------------------------------------------------------


async def test_wrong_credentials_are_named() -> None:
    with respx.mock(base_url=MASTER_URL) as router:
        router.get("/pools/default/remoteClusters").respond(401)

        with pytest.raises(XdcrError) as failure:
            await provision()

    assert str(failure.value) == (
        f"authentication failed for {MASTER_URL}: check the username and password"
    )


async def test_a_user_without_the_role_is_told_which_roles_do() -> None:
    with respx.mock(base_url=MASTER_URL) as router:
        router.get("/pools/default/remoteClusters").respond(403, json={"message": "Forbidden"})

        with pytest.raises(XdcrError, match="needs the Full Admin, Cluster Admin or XDCR Admin"):
            await provision()


async def test_an_unreachable_cluster_is_named_with_the_reason() -> None:
    with socket.socket() as probe:  # a loopback port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    master = ClusterAccess(f"http://127.0.0.1:{port}", "Administrator", "pw")

    with pytest.raises(XdcrError, match=rf"^cannot reach http://127\.0\.0\.1:{port}: .+"):
        await provision_xdcr(master, EDGE, name="edge-1", from_bucket="engine", to_bucket="engine")


async def test_couchbase_errors_are_surfaced(master: Master) -> None:
    master.references = [EDGE_REFERENCE]
    documented = {
        "errors": {
            "toBucket": "Error validating target bucket 'remote'. err=BucketValidationInfo "
            "Operation failed after max retries.  Last error: Bucket doesn't exist"
        }
    }
    master.create_replication.respond(400, json=documented)

    with pytest.raises(XdcrError) as failure:
        await provision()

    message = str(failure.value)
    assert message.startswith(f"POST /controller/createReplication on {MASTER_URL} failed (400): ")
    assert "Error validating target bucket 'remote'" in message


async def test_a_server_error_body_is_surfaced() -> None:
    with respx.mock(base_url=MASTER_URL) as router:
        router.get("/pools/default/remoteClusters").respond(500, text="Unexpected server error")

        with pytest.raises(XdcrError, match=r"failed \(500\): Unexpected server error$"):
            await provision()


@pytest.mark.parametrize(
    ("references", "tasks", "complaint"),
    [
        ({"not": "a list"}, [], "unexpected remote cluster listing"),
        ([{"name": "x"}], [], "unexpected remote cluster reference"),
        ([EDGE_REFERENCE], {"not": "a list"}, "unexpected task listing"),
    ],
)
async def test_answers_of_an_unexpected_shape_are_named(
    references: object, tasks: object, complaint: str
) -> None:
    with respx.mock(base_url=MASTER_URL, assert_all_called=False) as router:
        router.get("/pools/default/remoteClusters").respond(json=references)
        router.get("/pools/default/tasks").respond(json=tasks)
        with pytest.raises(XdcrError, match=complaint):
            await provision()


async def test_a_create_replication_answer_without_an_id_is_named(master: Master) -> None:
    master.references = [EDGE_REFERENCE]
    master.create_replication.respond(json={"status": "ok"})
    with pytest.raises(XdcrError, match="unexpected answer to createReplication"):
        await provision()


async def test_an_answer_that_is_not_json_is_named() -> None:
    with respx.mock(base_url=MASTER_URL) as router:
        router.get("/pools/default/remoteClusters").respond(200, text="<html>proxy</html>")
        with pytest.raises(XdcrError, match="answered with no JSON"):
            await provision()


async def test_a_cluster_that_times_out_is_named() -> None:
    with respx.mock(base_url=MASTER_URL) as router:
        router.get("/pools/default/remoteClusters").mock(side_effect=httpx.ConnectTimeout)
        with pytest.raises(XdcrError, match=r"cannot reach .+: timed out"):
            await provision()


# --- command line ------------------------------------------------------------------


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="app couchbase")
    add_cli(parser.add_subparsers(dest="command", required=True))
    return parser.parse_args(["xdcr", *argv])


COMMON = ("--master", MASTER_URL, "--master-user", "Administrator", "--edge", EDGE.url)


def test_cli_provisions_and_prints_the_outcome(
    master: Master, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv(MASTER_PASSWORD_ENV, "master-pw")
    monkeypatch.setenv(EDGE_PASSWORD_ENV, "targetPassword")
    args = parse(*COMMON, "--edge-user", "targetAdministrator", "--bucket", "engine")

    assert args.handler(args) == 0

    out = capsys.readouterr().out
    assert f"replication {REPLICATION_ID}: created" in out
    assert form(master.create_reference)["name"] == "edge-10.144.220.102-8091"
    assert form(master.create_reference)["password"] == "targetPassword"
    assert form(master.create_replication)["toBucket"] == "engine"


def test_cli_options_win_over_the_environment(
    master: Master, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(EDGE_PASSWORD_ENV, "from-env")
    args = parse(
        *COMMON,
        "--master-password", "master-pw",
        "--edge-user", "targetAdministrator",
        "--edge-password", "from-option",
        "--bucket", "engine",
        "--edge-bucket", "engine-replica",
        "--name", "edge-1",
    )  # fmt: skip

    assert args.handler(args) == 0

    assert form(master.create_reference)["password"] == "from-option"
    assert form(master.create_replication)["toBucket"] == "engine-replica"


def test_cli_failure_exits_2_with_the_reason(capsys: pytest.CaptureFixture[str]) -> None:
    credentials = ("--master-password", "bad", "--edge-user", "u", "--edge-password", "p")
    args = parse(*COMMON, *credentials, "--bucket", "engine")

    with respx.mock(base_url=MASTER_URL) as router:
        router.get("/pools/default/remoteClusters").respond(401)
        assert args.handler(args) == 2

    assert capsys.readouterr().err == (
        f"error: authentication failed for {MASTER_URL}: check the username and password\n"
    )


def test_cli_with_an_unreadable_certificate_exits_2(
    tmp_path: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "edge-ca.pem"
    credentials = ("--master-password", "m", "--edge-user", "u", "--edge-password", "p")
    args = parse(*COMMON, *credentials, "--bucket", "engine", "--edge-certificate", str(missing))

    assert args.handler(args) == 2
    assert f"cannot read the certificate {missing}: No such file" in capsys.readouterr().err


def test_cli_without_a_password_exits_2(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv(MASTER_PASSWORD_ENV, raising=False)
    args = parse(*COMMON, "--edge-user", "u", "--edge-password", "p", "--bucket", "engine")

    assert args.handler(args) == 2
    assert MASTER_PASSWORD_ENV in capsys.readouterr().err
