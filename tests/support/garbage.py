"""Hypothesis strategies for what a broken or hostile peer sends over a websocket.

Each protocol gets its messages in three qualities: noise (text that is not JSON,
binary, JSON of any shape), valid messages with arbitrary values, and near misses:
a valid message with one field retyped, dropped, or joined by a stray one. Near misses
are what reaches the deepest: past the parser, into validation and the handlers.
"""

from __future__ import annotations

import json
from typing import Any

from hypothesis import strategies as st

Message = dict[str, Any]

json_values: st.SearchStrategy[Any] = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=10,
)
json_objects = st.dictionaries(st.text(max_size=10), json_values, max_size=5)
hex64 = st.binary(min_size=32, max_size=32).map(bytes.hex)


@st.composite
def near_misses(draw: st.DrawFn, valid: st.SearchStrategy[Message]) -> Message:
    """A valid message with one field retyped, dropped, or joined by a stray field."""
    message = dict(draw(valid))
    key = draw(st.sampled_from(sorted(message)))
    change = draw(st.sampled_from(["retype", "drop", "add"]))
    if change == "retype":
        message[key] = draw(json_values)
    elif change == "drop":
        del message[key]
    else:
        message[draw(st.text(max_size=8))] = draw(json_values)
    return message


def on_the_wire(messages: st.SearchStrategy[Message]) -> st.SearchStrategy[str | bytes]:
    """Messages as JSON text, some in binary frames, with their near misses."""
    text = st.one_of(messages, near_misses(messages)).map(json.dumps)
    return text | text.map(str.encode)


noise: st.SearchStrategy[str | bytes] = st.one_of(
    st.text(), st.binary(), json_values.map(json.dumps)
)

# --- the control link (DESIGN §6) ---------------------------------------------------------

LINK_OPS = ["replica.changes", "status", "exec", "control", "state.sync", "reload"]
LINK_EVENTS = ["status", "module.state", "debug", "error", "replica.changed"]
request_ids = st.integers(min_value=-(2**63), max_value=2**61)

link_requests = st.fixed_dictionaries(
    {
        "type": st.just("request"),
        "id": request_ids,
        "op": st.sampled_from(LINK_OPS) | st.text(max_size=12),
        "args": json_objects
        | st.fixed_dictionaries(
            {}, optional={"since": st.integers() | json_values, "limit": st.integers()}
        ),
    }
)
link_events = st.builds(
    lambda event, fields: {**fields, "type": "event", "event": event},
    st.sampled_from(LINK_EVENTS) | st.text(max_size=12),
    st.dictionaries(
        st.sampled_from(["module_id", "name", "value", "state", "funcs", "level", "msg"]),
        json_values,
        max_size=4,
    ),
)
link_responses = st.fixed_dictionaries(
    {"type": st.just("response"), "id": request_ids, "ok": st.booleans()},
    optional={
        "result": json_values,
        "error": st.fixed_dictionaries({"code": st.text(), "message": st.text()}),
    },
)
handshake_frames = st.one_of(
    st.fixed_dictionaries({"type": st.just("challenge"), "nonce": hex64}),
    st.fixed_dictionaries(
        {
            "type": st.just("hello"),
            "edge_id": st.text(min_size=1, max_size=12),
            "boot_time": st.floats(allow_nan=False),
            "nonce": hex64,
            "proof": hex64,
            "devices_loaded": st.booleans(),
            "replica_seq": st.integers(min_value=0),
        }
    ),
    st.fixed_dictionaries(
        {
            "type": st.just("welcome"),
            "proof": hex64,
            "master_booting": st.booleans(),
            "epoch": st.integers(min_value=0),
        }
    ),
    st.fixed_dictionaries(
        {
            "type": st.just("control"),
            "controller": st.sampled_from(["edge", "master", "none"]),
            "epoch": st.integers(min_value=0),
        }
    ),
)
link_frames = st.one_of(
    noise, on_the_wire(st.one_of(link_requests, link_events, link_responses, handshake_frames))
)

# --- the client websocket (DESIGN §4) ------------------------------------------------------

CLIENT_NAMES = ["echo", "set", "fail", "value", "power"]


def client_requests(system_id: str, module_id: str) -> st.SearchStrategy[Message]:
    """Requests in the ACA Engine's shape, about the given system and module or others."""
    ids = st.none() | st.integers() | st.text(max_size=8)
    target = {
        "sys": st.just(system_id) | st.text(max_size=12),
        "mod": st.just("Echo") | st.text(max_size=8),
        "name": st.sampled_from(CLIENT_NAMES) | st.text(max_size=8),
    }
    optional_target = {"id": ids, "index": st.integers(min_value=-1, max_value=3)}
    watched = {"mod_id": st.just(module_id) | st.text(max_size=12)}
    return st.one_of(
        st.fixed_dictionaries(
            {"cmd": st.sampled_from(["bind", "unbind"]), **target}, optional=optional_target
        ),
        st.fixed_dictionaries(
            {"cmd": st.just("exec"), **target},
            optional={
                **optional_target,
                "args": st.lists(json_values, max_size=3),
                "kwargs": st.dictionaries(st.text(max_size=8), json_values, max_size=2),
            },
        ),
        st.fixed_dictionaries(
            {"cmd": st.sampled_from(["debug", "ignore"]), **watched}, optional={"id": ids}
        ),
        st.fixed_dictionaries(  # as the PlaceOS library sends them, the module id in ``mod``
            {
                "cmd": st.sampled_from(["debug", "ignore"]),
                "sys": target["sys"] | st.just(""),
                "mod": target["mod"] | st.just(module_id),
            },
            optional={**optional_target, "name": target["name"]},
        ),
        st.fixed_dictionaries({"cmd": st.text(max_size=8)}, optional={"id": ids}),
    )


def client_messages(system_id: str, module_id: str) -> st.SearchStrategy[str | bytes]:
    return st.one_of(noise, st.just("ping"), on_the_wire(client_requests(system_id, module_id)))
