"""The etcd store's in-memory mirror: indexes, the feed's order and its deletions."""

from __future__ import annotations

from app.store import Document
from app.store.etcd.mirror import LAST_PLACE, Mirror, revision_of, sequence, tombstone


def doc(doc_id: str, revision: int, place: int = 0, **body: object) -> Document:
    return Document(doc_id, "system", str(revision), dict(body), sequence(revision, place))


def test_a_sequence_is_the_revision_and_the_place_in_its_transaction() -> None:
    assert revision_of(sequence(42, 3)) == 42
    assert sequence(42, 3) < sequence(42, 4) < sequence(42) == sequence(42, LAST_PLACE)
    assert sequence(42) < sequence(43, 0)
    assert sequence(0) == 0


def test_lookups_follow_writes_to_indexed_fields() -> None:
    mirror = Mirror(0)
    mirror.put(doc("s1", 1, edge_control_id="lobby", modules=["m1", "m2"]))
    mirror.put(doc("s2", 2, edge_control_id="lobby"))
    assert [
        d.id for d in mirror.find("system", {"edge_control_id": "lobby"}, None, None).items
    ] == [
        "s1",
        "s2",
    ]
    mirror.put(doc("s1", 3, edge_control_id="roof", modules=["m2"]))
    assert mirror.find("system", {"edge_control_id": "lobby"}, None, None).total == 1
    assert mirror.find("system", {"modules": "m1"}, None, None).total == 0
    mirror.delete("s1", "system", 4)
    assert mirror.find("system", {"modules": "m2"}, None, None).total == 0
    page = mirror.find("system", {}, None, 1)
    assert ([d.id for d in page.items], page.next_after, page.total) == (["s2"], None, 1)


def test_a_batch_may_end_inside_a_transaction_and_continue_after_it() -> None:
    mirror = Mirror(0)
    mirror.load([doc("c", 5, 2), doc("a", 5, 0), doc("b", 5, 1)])
    mirror.advance(5)
    first = mirror.changes(0, 2)
    assert ([c.id for c in first.changes], first.more) == (["a", "b"], True)
    rest = mirror.changes(first.last_seq, 2)
    assert ([c.id for c in rest.changes], rest.more, rest.last_seq) == (["c"], False, sequence(5))


def test_each_document_appears_once_at_its_latest_state() -> None:
    mirror = Mirror(0)
    mirror.put(doc("a", 1))
    mirror.put(doc("b", 2))
    mirror.put(doc("a", 3, n=2))
    mirror.delete("b", "system", 4)
    mirror.advance(4)
    changes = mirror.changes(0, 10).changes
    assert [(c.id, c.deleted, c.version) for c in changes] == [("a", False, "3"), ("b", True, "4")]


def test_history_backfill_yields_to_what_the_mirror_knows() -> None:
    mirror = Mirror(10)
    mirror.put(doc("revived", 12))
    mirror.advance(12)
    backfill = [tombstone("revived", "system", 8), tombstone("gone", "system", 9)]
    changes = mirror.changes(sequence(7), 10, backfill).changes
    assert [(c.id, c.deleted) for c in changes] == [("gone", True), ("revived", False)]


def test_forgetting_deletions_raises_the_floor() -> None:
    mirror = Mirror(1)
    mirror.delete("a", "system", 2)
    mirror.put(doc("b", 3))
    mirror.advance(3)
    assert mirror.forget_deletions_through(sequence(2)) == 1
    assert mirror.floor == sequence(2)
    assert [c.id for c in mirror.changes(0, 10).changes] == ["b"]
