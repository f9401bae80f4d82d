"""Declared shapes: validation names every bad field, and never fails other than by ValidationFailed."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from control_api.app import all_routes
from control_api.errors import ValidationFailed
from control_api.schema import Field, Schema

JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)


def test_every_bad_field_is_named() -> None:
    schema = Schema({"a": Field("integer", minimum=0), "b": Field("email"), "c": Field("string", required=False)})
    with pytest.raises(ValidationFailed) as caught:
        schema.parse({"a": -1, "b": "nope", "d": 1})
    assert set(caught.value.fields) == {"a", "b", "d"}
    assert schema.parse({"a": 1, "b": "x@y.io"}) == {"a": 1, "b": "x@y.io"}


def test_every_bad_value_inside_arrays_and_objects_is_named_by_its_path() -> None:
    item = Schema({"media_id": Field("uuid"), "price": Field("integer", required=False, minimum=1)})
    schema = Schema({"attachments": Field("array", items=Field("object", shape=item)),
                     "tags": Field("array", required=False, items=Field("string", max_len=3))})
    with pytest.raises(ValidationFailed) as caught:
        schema.parse({"attachments": [{"media_id": "nope", "price": 0}, {"media_id": "x", "extra": 1}],
                      "tags": ["ok", "toolong"]})
    assert caught.value.fields == {
        "attachments[0].media_id": "must be a UUID", "attachments[0].price": "must be >= 1",
        "attachments[1].media_id": "must be a UUID", "attachments[1].extra": "is not a known field",
        "tags[1]": "must have at most 3 characters",
    }


@pytest.mark.parametrize("route", all_routes(), ids=lambda r: f"{r.method} {r.path}")
@given(data=JSON)
def test_route_bodies_accept_or_refuse_cleanly(route: Any, data: Any) -> None:
    """Fuzz every declared body: a parse either succeeds or raises ValidationFailed."""
    if route.body is None:
        return
    try:
        parsed = route.body.parse(data)
    except ValidationFailed as exc:
        assert exc.fields
        return
    json.dumps(parsed, default=str)


@given(st.dictionaries(st.text(max_size=10), st.text(max_size=20), max_size=5))
def test_query_strings_parse_cleanly(query: dict[str, str]) -> None:
    schema = Schema({"before": Field("integer", required=False, minimum=1), "flag": Field("boolean", required=False)})
    try:
        schema.parse(query, from_query=True)
    except ValidationFailed as exc:
        assert exc.fields
