"""The signaling frame codec: JSON in text frames, msgpack in binary frames (``switchboard.msgpack``).

A frame decodes to one message: a JSON/msgpack object (``dict``) whose ``type`` is a non-empty
string. Anything else raises :class:`WireError` naming the problem; nothing else escapes
:func:`decode`, whatever the bytes (the hypothesis tests hold it to that). Every string in a
message (keys and values) is valid Unicode: a lone surrogate (JSON ``"\\ud800"``, or invalid UTF-8
in msgpack) is ``bad_message`` here, at the edge, so no handler, relay or recipient's socket ever
holds text it cannot encode.
"""

from __future__ import annotations

import enum
import json
from typing import Any

import msgpack

from switchboard.errors import SwitchboardError

MSGPACK_PROTOCOL = "switchboard.msgpack"
"""The WebSocket subprotocol a client asks for to get binary msgpack frames."""

MAX_DEPTH = 16
"""Nesting deeper than this is refused (a cheap guard against pathological frames)."""


class Codec(enum.Enum):
    JSON = "json"
    MSGPACK = "msgpack"

    @classmethod
    def for_protocol(cls, protocol: str | None) -> Codec:
        return cls.MSGPACK if protocol == MSGPACK_PROTOCOL else cls.JSON


class WireError(SwitchboardError):
    """A frame that is not a message: ``code`` is the wire error code, ``message`` says why."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.ref: Any = None
        """The frame's ``id`` when the frame was an object whose ``id`` is usable text or an integer
        (the edge echoes it as ``ref``, so a request refused here is still answered)."""


_JSON_ENCODE = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode
"""One encoder for every frame (``json.dumps`` with options builds a new one per call)."""

BAD_TEXT = "text must be valid Unicode (no lone surrogates, valid UTF-8)"


def _text_ok(text: str) -> bool:
    if text.isascii():  # the common case, without copying
        return True
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate: no UTF-8 (nor a WebSocket text frame) can carry it
        return False
    return True


def _check_tree(value: Any, depth: int = 0) -> None:
    """Raises :class:`WireError` for nesting over :data:`MAX_DEPTH` or a string that is not valid Unicode."""
    if depth > MAX_DEPTH:
        raise WireError("bad_frame", f"frame nests deeper than {MAX_DEPTH} levels")
    if isinstance(value, str):
        if not _text_ok(value):
            raise WireError("bad_message", BAD_TEXT)
    elif isinstance(value, dict):
        for key, item in value.items():
            if isinstance(key, str) and not _text_ok(key):
                raise WireError("bad_message", BAD_TEXT)
            _check_tree(item, depth + 1)
    elif isinstance(value, list):
        for item in value:
            _check_tree(item, depth + 1)


def decode(data: str | bytes, codec: Codec, *, max_bytes: int) -> dict[str, Any]:
    """One frame's payload to a message dict, or :class:`WireError` (``too_large``, ``bad_frame``,
    ``bad_message`` for text that is not valid Unicode)."""
    size = len(data)
    if not isinstance(data, bytes) and size * 4 > max_bytes and not data.isascii():
        size = len(data.encode("utf-8", "surrogatepass"))  # (a short text cannot be over: 4 bytes a character at most)
    if size > max_bytes:
        raise WireError("too_large", f"frame of {size} bytes is over the {max_bytes}-byte limit")
    try:
        if codec is Codec.JSON:
            value = json.loads(data)
        else:
            if isinstance(data, str):
                raise WireError("bad_frame", "this socket speaks msgpack: send binary frames")
            # Invalid UTF-8 becomes lone surrogates here, refused below with the frame's id in hand.
            value = msgpack.unpackb(data, raw=False, strict_map_key=True, unicode_errors="surrogateescape")
    except WireError:
        raise
    except UnicodeDecodeError:
        raise WireError("bad_message", BAD_TEXT) from None
    except RecursionError:
        raise WireError("bad_frame", "frame nests too deeply") from None
    except (ValueError, TypeError, msgpack.UnpackException, msgpack.ExtraData) as exc:
        raise WireError("bad_frame", f"not valid {codec.value}: {str(exc)[:120]}") from None
    except Exception as exc:  # msgpack raises assorted errors on hostile input; all mean the same here
        raise WireError("bad_frame", f"not valid {codec.value}: {type(exc).__name__}") from None
    if not isinstance(value, dict):
        raise WireError("bad_frame", f"a message is an object, got {type(value).__name__}")
    try:
        # The walk costs more than the parse: skip it for plain JSON text (ASCII without \u escapes
        # holds no lone surrogate, and fewer brackets than MAX_DEPTH cannot nest deeper).
        if not (isinstance(data, str) and data.isascii() and "\\u" not in data
                and data.count("{") + data.count("[") <= MAX_DEPTH):
            _check_tree(value)
        kind = value.get("type")
        if not isinstance(kind, str) or not kind:
            raise WireError("bad_frame", "a message needs a string 'type'")
    except WireError as exc:
        rid = value.get("id")
        if isinstance(rid, int) or (isinstance(rid, str) and _text_ok(rid)):
            exc.ref = rid
        raise
    return value


def encode(message: dict[str, Any], codec: Codec) -> str | bytes:
    """A message to a frame payload: ``str`` for a text frame (JSON), ``bytes`` for a binary one."""
    if codec is Codec.JSON:
        return _JSON_ENCODE(message)
    return msgpack.packb(message, use_bin_type=True)
