"""Secret rotation with a grace period."""

from __future__ import annotations

from datetime import timedelta

import pytest

from app.control.clock import now_utc
from app.services.catalog import secret_id
from app.services.secrets import EdgeSecrets, fingerprint
from app.store import SqliteStore


@pytest.fixture
def secrets(store: SqliteStore) -> EdgeSecrets:
    return EdgeSecrets(store)


async def test_the_previous_secret_stays_valid_during_the_grace(secrets: EdgeSecrets) -> None:
    first = await secrets.issue("edge-1")
    second = await secrets.issue("edge-1", grace_s=60)
    assert await secrets.valid("edge-1") == [second, first]

    await secrets.end_grace("edge-1", second)  # the edge used the new one
    assert await secrets.valid("edge-1") == [second]


async def test_two_rotations_in_a_row_keep_every_secret_valid(secrets: EdgeSecrets) -> None:
    first = await secrets.issue("edge-1")
    second = await secrets.issue("edge-1", grace_s=60)
    third = await secrets.issue("edge-1", grace_s=60)
    assert await secrets.valid("edge-1") == [third, second, first]

    # The edge comes back with the second: the first ends, the second stays.
    await secrets.end_grace("edge-1", second)
    assert await secrets.valid("edge-1") == [third, second]
    await secrets.end_grace("edge-1", third)
    assert await secrets.valid("edge-1") == [third]


async def test_a_rotation_extends_a_shorter_grace_it_finds(secrets: EdgeSecrets) -> None:
    first = await secrets.issue("edge-1")
    await secrets.issue("edge-1", grace_s=1)
    await secrets.issue("edge-1", grace_s=3600)
    credentials = await secrets.credentials("edge-1")
    assert credentials is not None
    [*_, oldest] = credentials.previous
    assert oldest.secret == first
    assert oldest.until > now_utc() + timedelta(seconds=3500)


async def test_no_grace_revokes_every_previous_secret_at_once(secrets: EdgeSecrets) -> None:
    await secrets.issue("edge-1")
    await secrets.issue("edge-1", grace_s=60)
    newest = await secrets.issue("edge-1", grace_s=0)
    assert await secrets.valid("edge-1") == [newest]


async def test_a_grace_that_ended_leaves_only_the_new_secret(secrets: EdgeSecrets) -> None:
    await secrets.issue("edge-1")
    newest = await secrets.issue("edge-1", grace_s=0.001)
    credentials = await secrets.credentials("edge-1")
    assert credentials is not None and credentials.previous
    assert credentials.valid(credentials.previous[0].until) == [newest]


async def test_the_answer_names_each_valid_secret_and_its_end(secrets: EdgeSecrets) -> None:
    first = await secrets.issue("edge-1")
    second = await secrets.issue("edge-1", grace_s=60)
    credentials = await secrets.credentials("edge-1")
    assert credentials is not None
    current, previous = credentials.validity(now_utc(), in_use=first)
    assert current == {
        "fingerprint": fingerprint(second),
        "current": True,
        "until": None,
        "in_use": False,
    }
    assert previous["fingerprint"] == fingerprint(first) != current["fingerprint"]
    assert (previous["current"], previous["in_use"]) == (False, True)
    assert previous["until"] == credentials.previous[0].until.isoformat()
    assert first not in str(credentials.validity(now_utc()))


async def test_a_document_of_the_single_previous_format_is_read(
    secrets: EdgeSecrets, store: SqliteStore
) -> None:
    until = (now_utc() + timedelta(seconds=60)).isoformat()
    body = {"secret": "new", "previous": "old", "previous_until": until}
    await store.upsert(secret_id("edge-1"), "edge_secret", body)
    assert await secrets.valid("edge-1") == ["new", "old"]


async def test_an_unknown_edge_has_no_secret(secrets: EdgeSecrets) -> None:
    assert await secrets.valid("nobody") == []
