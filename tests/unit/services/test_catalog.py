"""Pure parts of the catalog."""

from __future__ import annotations

from app.services.catalog import merge_patch


def test_merge_patch_follows_rfc_7396() -> None:
    target = {"a": 1, "settings": {"x": 1, "y": 2}, "keep": True}
    patch = {"a": None, "settings": {"y": None, "z": 3}, "new": [1]}
    assert merge_patch(target, patch) == {
        "settings": {"x": 1, "z": 3},
        "keep": True,
        "new": [1],
    }
    assert target["settings"] == {"x": 1, "y": 2}, "the target is not modified"


def test_merge_patch_replaces_non_objects() -> None:
    assert merge_patch({"modules": ["a", "b"]}, {"modules": ["b"]}) == {"modules": ["b"]}
    assert merge_patch({"settings": 1}, {"settings": {"a": 1}}) == {"settings": {"a": 1}}
