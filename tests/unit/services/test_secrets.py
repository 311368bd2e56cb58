"""Secret rotation with a grace period."""

from __future__ import annotations

import pytest

from app.services.secrets import EdgeSecrets
from app.store import SqliteStore


@pytest.fixture
def secrets(store: SqliteStore) -> EdgeSecrets:
    return EdgeSecrets(store)


async def test_the_previous_secret_stays_valid_during_the_grace(secrets: EdgeSecrets) -> None:
    first = await secrets.issue("edge-1")
    second = await secrets.issue("edge-1", grace_s=60)
    assert await secrets.valid("edge-1") == [second, first]

    await secrets.end_grace("edge-1")  # the edge used the new one
    assert await secrets.valid("edge-1") == [second]


async def test_no_grace_revokes_the_previous_secret_at_once(secrets: EdgeSecrets) -> None:
    await secrets.issue("edge-1")
    newest = await secrets.issue("edge-1", grace_s=0)
    assert await secrets.valid("edge-1") == [newest]


async def test_a_grace_that_ended_leaves_only_the_new_secret(secrets: EdgeSecrets) -> None:
    await secrets.issue("edge-1")
    newest = await secrets.issue("edge-1", grace_s=0.001)
    credentials = await secrets.credentials("edge-1")
    assert credentials is not None and credentials.previous is not None
    assert credentials.valid(credentials.previous_until) == [newest]  # type: ignore[arg-type]


async def test_an_unknown_edge_has_no_secret(secrets: EdgeSecrets) -> None:
    assert await secrets.valid("nobody") == []
