"""What a stored document may be: small and shallow enough for every replica to take it.

Every configuration document must travel to each edge in one control-link frame, and
the link's JSON parser refuses nesting beyond about 200 levels. A document that breaks
either rule would stall replication for every edge, so it is refused when written:
413 above ``ENGINE_MAX_DOCUMENT_BYTES``, 422 for nesting deeper than :data:`MAX_DEPTH`
or a NUL character (which no driver, path or device protocol expects in a value).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from itertools import accumulate
from typing import Any

from app.errors import ContentTooLarge, InvalidField

#: Deepest nesting of objects and arrays a document may have.
MAX_DEPTH = 32
#: Deepest nesting a link frame can carry in a document: the link's JSON parser stops
#: near 200 levels, and a change sits a few levels inside its response frame.
LINK_MAX_DEPTH = 180


def encoded_size(value: Any) -> int:
    """Bytes of ``value`` as compact UTF-8 JSON, as the link sends it."""
    text = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    return len(text.encode("utf-8", "surrogatepass"))


def check_document(kind: str, doc_id: str | None, body: dict[str, Any], *, max_bytes: int) -> None:
    """Raise `ContentTooLarge` (413) or `InvalidField` (422) for a body no replica could take."""
    _check_values(body, "", 1)
    size = encoded_size({"id": doc_id or "", "type": kind, "version": "", **body})
    if size > max_bytes:
        raise ContentTooLarge(
            f"the {kind} document would be {size} bytes; the limit is {max_bytes} bytes "
            "(ENGINE_MAX_DOCUMENT_BYTES)",
            limit=max_bytes,
            size=size,
        )


def _check_values(value: Any, path: str, depth: int) -> None:
    if isinstance(value, str):
        if "\x00" in value:
            raise InvalidField(path or "body", "must not contain a NUL character")
        return
    if not isinstance(value, dict | list):
        return
    if depth > MAX_DEPTH:
        raise InvalidField(path or "body", f"nests deeper than {MAX_DEPTH} levels")
    if isinstance(value, list):
        for index, item in enumerate(value):
            _check_values(item, f"{path}[{index}]", depth + 1)
        return
    for key, item in value.items():
        if "\x00" in key:
            raise InvalidField(path or "body", "a key must not contain a NUL character")
        _check_values(item, f"{path}.{key}" if path else key, depth + 1)


#: A JSON string literal, escapes included: what a depth scan of JSON text skips over.
_JSON_STRING = re.compile(r'"(?:[^"\\]|\\.)*"')
_DEPTH_STEP = {"{": 1, "[": 1, "}": -1, "]": -1}


def json_depth(text: str) -> int:
    """How deeply objects and arrays nest in the JSON ``text`` (0 for a scalar).

    Scans the text instead of parsing it: brackets inside strings are skipped over.
    """
    brackets = re.findall(r"[\[\]{}]", _JSON_STRING.sub("", text))
    return max(accumulate(_DEPTH_STEP[bracket] for bracket in brackets), default=0)


def unshippable(text: str, size: int, *, max_bytes: int) -> str | None:
    """Why a change (as JSON ``text``, ``size`` bytes) cannot travel in a link frame, or None.

    Nearly every document has far fewer brackets than a frame can nest, which counting
    them tells at C speed; only a document with more is scanned for its real depth.
    """
    if size > max_bytes:
        return f"{size} bytes, over the {max_bytes} bytes one link frame can carry"
    if text.count("{") + text.count("[") <= LINK_MAX_DEPTH:
        return None
    depth = json_depth(text)
    if depth > LINK_MAX_DEPTH:
        return f"nested {depth} levels deep, deeper than a link frame can carry"
    return None


def describe_skipped(skipped: Sequence[Mapping[str, Any]]) -> str:
    """One line naming the changes replication had to leave out, and why."""
    return "; ".join(
        f"{item.get('type')} {item.get('id')!r} (seq {item.get('seq')}): {item.get('reason')}"
        for item in skipped
    )
