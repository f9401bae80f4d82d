"""The billing stream's entries (switchboard/paid.py): what a node writes decodes back whole, and
anything else (arbitrary unicode, lone surrogates, wrong types, unknown fields) is a ValueError the
consumer logs and acknowledges; the consumer never raises on it."""

from __future__ import annotations

import json

from hypothesis import given, settings
from hypothesis import strategies as st

from switchboard.paid import BillingEntry

ANY_TEXT = st.text(st.characters(codec=None) | st.characters(categories=["Cs"]), max_size=40)
JSONISH = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | ANY_TEXT,
                       lambda inner: st.lists(inner, max_size=3) | st.dictionaries(ANY_TEXT, inner, max_size=3),
                       max_leaves=8)


def test_each_op_round_trips() -> None:
    for entry in (BillingEntry("hold", call="call_x", minute=1, timeout_s=120.0),
                  BillingEntry("post", call="call_x", minute=2),
                  BillingEntry("end", call="call_x", minutes=3),
                  BillingEntry("show_ended", room="show-a", show_id="sh_b", started_ms=1, ended_ms=2)):
        fields = {k.encode(): v.encode() for k, v in entry.encode().items()}
        assert BillingEntry.decode(fields) == entry


@settings(max_examples=200, deadline=None)
@given(op=ANY_TEXT | st.sampled_from(["hold", "post", "end", "show_ended"]),
       data=st.dictionaries(st.sampled_from(["call", "minute", "minutes", "timeout_s", "room", "show_id",
                                             "started_ms", "ended_ms", "other"]) | ANY_TEXT, JSONISH, max_size=5))
def test_any_entry_decodes_or_is_a_value_error(op: str, data: dict[str, object]) -> None:
    try:
        fields = {b"op": op.encode("utf-8", "surrogatepass"),
                  b"data": json.dumps(data).encode("utf-8", "surrogatepass")}
        BillingEntry.decode(fields)
    except (ValueError, TypeError, UnicodeDecodeError):
        pass
