"""The frame codec and message validation, pure: round trips, named errors, and hypothesis fuzzing."""

from __future__ import annotations

import json

import msgpack
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from signaling.errors import BadMessage, UnknownType
from signaling.limits import AbuseMeter, TokenBucket
from signaling.messages import SCHEMAS, validate
from switchboard.wire import Codec, WireError, _check_tree, decode, encode

LIMIT = 64 * 1024
json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1) | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=20,
)


@pytest.mark.parametrize("codec", list(Codec))
def test_round_trip(codec: Codec) -> None:
    message = {"type": "call.offer", "id": 3, "call_id": "c", "sdp": "v=0\r\né"}
    assert decode(encode(message, codec), codec, max_bytes=LIMIT) == message


def test_named_errors() -> None:
    for data, code in (("{", "bad_frame"), ("1", "bad_frame"), ('{"type": ""}', "bad_frame"),
                       ("[" * 5000 + "]" * 5000, "bad_frame"), ("x" * (LIMIT + 1), "too_large")):
        with pytest.raises(WireError) as info:
            decode(data, Codec.JSON, max_bytes=LIMIT)
        assert info.value.code == code


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300) | st.text(max_size=300), st.sampled_from(list(Codec)))
def test_decoder_only_raises_wire_errors(data: bytes | str, codec: Codec) -> None:
    try:
        assert isinstance(decode(data, codec, max_bytes=LIMIT), dict)
    except WireError as exc:
        assert exc.code in {"bad_frame", "too_large", "bad_message"}


@settings(max_examples=300, deadline=None)
@given(json_values, st.sampled_from(list(Codec)))
def test_encoded_values_decode_or_fail_cleanly(value: object, codec: Codec) -> None:
    data = json.dumps(value) if codec is Codec.JSON else msgpack.packb(value)
    try:
        assert decode(data, codec, max_bytes=LIMIT)["type"]
    except WireError:
        pass


@settings(max_examples=500, deadline=None)
@given(st.sampled_from([*SCHEMAS, "nope"]),
       st.dictionaries(st.sampled_from(["id", "to", "call_id", "sdp", "room", "text", "users", "candidate",
                                        "ticket", "token", "resume"]), json_values, max_size=6))
def test_validation_only_raises_its_own_errors(kind: str, fields: dict) -> None:  # type: ignore[type-arg]
    try:
        message = validate({"type": kind, **fields})
    except (BadMessage, UnknownType) as exc:
        assert exc.message
        return
    assert message.type == kind and set(message.body) == {f.name for f in SCHEMAS[kind]}


def test_validation_examples() -> None:
    assert validate({"type": "call.ice", "call_id": "c"}).body["candidate"] is None
    with pytest.raises(BadMessage, match=r"'call\.invite' needs 'to'"):
        validate({"type": "call.invite"})
    with pytest.raises(BadMessage):
        validate({"type": "presence.query", "users": []})
    with pytest.raises(BadMessage):
        validate({"type": "ping", "id": True})
    with pytest.raises(UnknownType):
        validate({"type": "hello"})


@pytest.mark.parametrize("codec", list(Codec))
def test_lone_surrogates_are_bad_messages_with_their_id(codec: Codec) -> None:
    for message in ({"type": "show.chat", "id": 7, "room": "r", "text": "hi \ud800"},
                    {"type": "call.chat", "id": "x", "call_id": "c", "text": "\udfff"},
                    {"type": "ping", "id": 9, "\ud83d": 1}):
        data = (json.dumps(message) if codec is Codec.JSON
                else msgpack.packb(message, use_bin_type=True, unicode_errors="surrogatepass"))
        with pytest.raises(WireError) as info:
            decode(data, codec, max_bytes=LIMIT)
        assert (info.value.code, info.value.ref) == ("bad_message", message["id"])
    # A valid pair is text like any other.
    assert decode(json.dumps({"type": "ping", "t": "\ud83d\ude00"}), codec.JSON, max_bytes=LIMIT)["t"] == "\U0001f600"


def test_invalid_utf8_in_msgpack_is_a_bad_message() -> None:
    data = msgpack.packb({"type": "call.chat", "id": 1, "call_id": "c", "text": "x"}).replace(b"\xa1x", b"\xa1\xff")
    with pytest.raises(WireError) as info:
        decode(data, Codec.MSGPACK, max_bytes=LIMIT)
    assert (info.value.code, info.value.ref) == ("bad_message", 1)


def test_token_bucket_and_abuse_meter() -> None:
    bucket = TokenBucket(rate=2, burst=3, now=0.0)
    assert [bucket.take(0.0) for _ in range(4)] == [True, True, True, False]
    assert bucket.take(0.5) and not bucket.take(0.5)
    meter = AbuseMeter(limit=2, window_s=10)
    assert not meter.hit(0) and not meter.hit(1) and meter.hit(2)
    assert not AbuseMeter(limit=2, window_s=10).hit(100)
    late = AbuseMeter(limit=2, window_s=10)
    late.hit(0), late.hit(1)
    assert not late.hit(20)


def test_nesting_over_the_limit_is_refused_in_plain_text_too() -> None:
    # Plain ASCII JSON skips the tree walk only when it has too few brackets to nest too deep.
    deep: dict[str, object] = {"type": "ping"}
    for _ in range(17):
        deep = {"type": "ping", "x": deep}
    with pytest.raises(WireError) as info:
        decode(json.dumps(deep), Codec.JSON, max_bytes=LIMIT)
    assert info.value.code == "bad_frame"
    ok: dict[str, object] = {"type": "ping"}
    for _ in range(15):
        ok = {"type": "ping", "x": ok}
    assert decode(json.dumps(ok), Codec.JSON, max_bytes=LIMIT) == ok


any_text = st.text(st.characters(categories=["Cs", "Ll", "Lu", "Nd", "Po", "Ps", "Pe", "Lo", "So"]), max_size=8)
"""Text with lone surrogates, brackets and non-ASCII letters."""
nested_values = st.recursive(
    st.none() | st.integers() | any_text,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(any_text, inner, max_size=3),
    max_leaves=40,
)


@settings(max_examples=400, deadline=None)
@given(nested_values, st.booleans())
def test_the_plain_text_shortcut_decides_as_the_walk_does(value: object, ascii_only: bool) -> None:
    """Whatever the text (escapes, lone surrogates, nesting), decode accepts or refuses it as the
    full walk over the parsed value would."""
    message = {"type": "ping", "v": value}
    text = json.dumps(message, ensure_ascii=ascii_only)
    try:
        _check_tree(json.loads(text))
        expected = None
    except WireError as exc:
        expected = exc.code
    try:
        decode(text, Codec.JSON, max_bytes=1 << 20)
        got = None
    except WireError as exc:
        got = exc.code
    assert got == expected
