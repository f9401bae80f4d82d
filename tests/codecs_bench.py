"""``python -m tests.codecs_bench``: candidate validation libraries against ours, on one core, in one run
(ratios are what to read):

- HTTP bodies: ``control_api/schema.py`` (json.loads + ``Schema.parse``) vs pydantic v2
  (``model_validate_json`` on the raw bytes), on valid bodies, and the errors each gives for a bad one;
- signaling frames: the node's ``switchboard/wire.py`` decode + ``signaling/messages.py`` validate (and
  ``wire.encode``) vs msgspec (tagged-union Structs decoded and validated in one C call), JSON and msgpack.

pydantic and msgspec are not dependencies: ``pip install pydantic msgspec`` into the venv to run this.
Each figure is printed as a JSON line as it is measured; the result object repeats them.
"""

# No ``from __future__ import annotations``: msgspec reads the Structs' annotations, local aliases included.
import argparse
import json
import sys
import time
import uuid
from collections.abc import Callable
from typing import Annotated, Any

from control_api.schema import Field, Schema
from signaling.messages import validate
from switchboard.wire import Codec, decode, encode

DESCRIPTION = "validation/codec cost: our schema.py vs pydantic v2, our wire+messages vs msgspec"

MEDIA = str(uuid.UUID(int=7))
SDP = ("v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n"
       + "a=candidate:1 1 udp 2122260223 10.0.0.1 5000 typ host\r\n" * 60)
BODIES = {
    "register": {"email": "ada@example.com", "password": "correct horse battery"},
    "send_message": {"text": "hello there, how are you?",
                     "attachments": [{"media_id": MEDIA, "private": True, "price": 50}] * 3},
}
BAD_BODY = {"text": 5, "attachments": [{"media_id": "nope", "price": 0}], "extra": 1}
FRAMES: dict[str, dict[str, Any]] = {
    "ping": {"type": "ping", "id": 1},
    "call.ice": {"type": "call.ice", "id": "r7", "call_id": "c-5f0c2d7a",
                 "candidate": {"candidate": "candidate:1 1 udp 2122260223 192.168.1.2 54321 typ host",
                               "sdpMid": "0", "sdpMLineIndex": 0}},
    "show.chat": {"type": "show.chat", "id": 9, "room": "r-ada", "text": "hello everyone"},
    "call.offer": {"type": "call.offer", "id": "r8", "call_id": "c-5f0c2d7a", "sdp": SDP},
}
OUT: dict[str, Any] = {"type": "show.roster", "room": "r-ada", "participants": [
    {"user": f"u-{i}", "pseudo": f"viewer {i}", "publishing": i == 0, "joined_at": 1_700_000_000 + i}
    for i in range(20)]}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--seconds", type=float, default=0.3, help="time per repeat of each measurement")
    parser.add_argument("--repeats", type=int, default=5, help="repeats; the best is kept")


def _race(fns: dict[str, Callable[[], Any]], seconds: float, repeats: int) -> dict[str, float]:
    """Microseconds per call of each function, best of ``repeats`` rounds; the contenders take turns
    within each round, so the machine's other load falls on all of them alike."""
    counts = {}
    for name, fn in fns.items():
        n, start = 0, time.perf_counter()
        while time.perf_counter() - start < seconds / 10:
            fn()
            n += 1
        counts[name] = max(n * 10, 1)
    best = dict.fromkeys(fns, float("inf"))
    for _ in range(repeats):
        for name, fn in fns.items():
            n, start = counts[name], time.perf_counter()
            for _ in range(n):
                fn()
            best[name] = min(best[name], (time.perf_counter() - start) / n)
    return {f"{name}_us": round(t * 1e6, 3) for name, t in best.items()}


def _ours_http() -> dict[str, Schema]:
    email = Field("email", max_len=320)
    return {
        "register": Schema({"email": email, "password": Field("string", min_len=8, max_len=128)}),
        "send_message": Schema({
            "text": Field("string", required=False, max_len=4000),
            "attachments": Field("array", required=False, max_len=10, items=Field("object", shape=Schema({
                "media_id": Field("uuid"), "private": Field("boolean", required=False),
                "price": Field("integer", required=False, minimum=1, maximum=2**62)}))),
        }),
    }


def _pydantic_http() -> dict[str, Any]:
    from pydantic import BaseModel, ConfigDict, EmailStr
    from pydantic import Field as PField

    class Strict(BaseModel):
        model_config = ConfigDict(extra="forbid", strict=True)

    class Register(Strict):
        email: EmailStr = PField(max_length=320)
        password: str = PField(min_length=8, max_length=128)

    class RegisterPattern(Strict):  # the same check as ours (a regex), not email-validator's
        email: str = PField(max_length=320, pattern=r"^[^@\s]{1,64}@[^@\s]+\.[^@\s]+$")
        password: str = PField(min_length=8, max_length=128)

    class Attachment(Strict):
        media_id: uuid.UUID = PField(strict=False)  # a UUID arrives as a JSON string
        private: bool | None = None
        price: int | None = PField(default=None, ge=1, le=2**62)

    class SendMessage(Strict):
        text: str | None = PField(default=None, max_length=4000)
        attachments: list[Attachment] | None = PField(default=None, max_length=10)

    return {"register": Register, "register_pattern": RegisterPattern, "send_message": SendMessage}


def _msgspec_frames() -> tuple[Any, Any]:
    import msgspec
    from msgspec import Meta, Struct

    ident = Annotated[str, Meta(min_length=1, max_length=128)]
    rid = int | ident | None

    class Candidate(Struct):
        candidate: Annotated[str, Meta(max_length=1024)]
        sdpMid: Annotated[str, Meta(max_length=64)] | None = None  # the W3C names on the wire
        sdpMLineIndex: Annotated[int, Meta(ge=0, lt=1024)] | None = None

    class Ping(Struct, tag="ping", tag_field="type"):
        id: rid = None

    class CallIce(Struct, tag="call.ice", tag_field="type"):
        call_id: ident
        candidate: Candidate | None = None
        id: rid = None

    class ShowChat(Struct, tag="show.chat", tag_field="type"):
        room: ident
        text: Annotated[str, Meta(min_length=1, max_length=2000)]
        id: rid = None

    class CallOffer(Struct, tag="call.offer", tag_field="type"):
        call_id: ident
        sdp: Annotated[str, Meta(min_length=1, max_length=60_000)]
        id: rid = None

    union = Ping | CallIce | ShowChat | CallOffer
    return msgspec.json.Decoder(union), msgspec.msgpack.Decoder(union)


def _line(out: list[dict[str, Any]], **row: Any) -> None:
    out.append(row)
    print(json.dumps(row), flush=True)


def _errors(fn: Callable[[], Any]) -> Any:
    """What a client would be told: per-field errors where the library gives them, else the text."""
    try:
        fn()
    except Exception as exc:  # the error text is the measurement
        if hasattr(exc, "fields"):  # ours: ValidationFailed, rendered as the problem's ``errors``
            return exc.fields
        if hasattr(exc, "errors"):  # pydantic's ValidationError
            return {".".join(map(str, e["loc"])): e["msg"] for e in exc.errors(include_url=False)}
        return f"{type(exc).__name__}: {str(exc)[:300]}"
    return "(accepted)"


def run(args: argparse.Namespace) -> dict[str, Any]:
    import msgpack
    import msgspec

    s, r = args.seconds, args.repeats
    rows: list[dict[str, Any]] = []
    ours, theirs = _ours_http(), _pydantic_http()
    for name, body in BODIES.items():
        raw = json.dumps(body).encode()
        fns = {"schema_py": lambda: ours[name].parse(json.loads(raw)),  # noqa: B023 - used before the loop moves on
               "pydantic": lambda: theirs[name].model_validate_json(raw)}  # noqa: B023
        if name == "register":
            fns["pydantic_pattern_email"] = lambda: theirs["register_pattern"].model_validate_json(raw)  # noqa: B023
        t = _race(fns, s, r)
        _line(rows, kind="http_body", case=name, bytes=len(raw), **t,
              ratio=round(t["pydantic_us"] / t["schema_py_us"], 2))
    bad = json.dumps(BAD_BODY).encode()
    _line(rows, kind="http_errors", schema_py=_errors(lambda: ours["send_message"].parse(json.loads(bad))),
          pydantic=_errors(lambda: theirs["send_message"].model_validate_json(bad)))

    json_dec, pack_dec = _msgspec_frames()
    enc_json, enc_pack = msgspec.json.Encoder(), msgspec.msgpack.Encoder()
    for name, frame in FRAMES.items():
        text = json.dumps(frame, separators=(",", ":"))
        raw, packed = text.encode(), msgpack.packb(frame, use_bin_type=True)
        t = _race({"json_ours": lambda: validate(decode(text, Codec.JSON, max_bytes=65536)),  # noqa: B023
                   "json_msgspec": lambda: json_dec.decode(raw),  # noqa: B023
                   "msgpack_ours": lambda: validate(decode(packed, Codec.MSGPACK, max_bytes=65536)),  # noqa: B023
                   "msgpack_msgspec": lambda: pack_dec.decode(packed)}, s, r)  # noqa: B023
        ours_obj, their_obj = validate(decode(text, Codec.JSON, max_bytes=65536)), json_dec.decode(raw)
        _line(rows, kind="ws_decode", case=name, bytes=len(raw), **t,
              json_ratio=round(t["json_msgspec_us"] / t["json_ours_us"], 2),
              msgpack_ratio=round(t["msgpack_msgspec_us"] / t["msgpack_ours_us"], 2),
              decoded_bytes_ours=sys.getsizeof(ours_obj.body) + sys.getsizeof(ours_obj),
              decoded_bytes_msgspec=sys.getsizeof(their_obj))
    outgoing: dict[str, dict[str, Any]] = {"call.ice": FRAMES["call.ice"], "call.offer": FRAMES["call.offer"],
                                           "show.roster": OUT}
    for name, msg in outgoing.items():
        t = _race({"json_ours": lambda: encode(msg, Codec.JSON),  # noqa: B023
                   "json_msgspec": lambda: enc_json.encode(msg).decode(),  # noqa: B023 - aiohttp sends text as str
                   "msgpack_ours": lambda: encode(msg, Codec.MSGPACK),  # noqa: B023
                   "msgpack_msgspec": lambda: enc_pack.encode(msg)}, s, r)  # noqa: B023
        _line(rows, kind="ws_encode", case=name, bytes_ours=len(str(encode(msg, Codec.JSON)).encode()),
              bytes_msgspec=len(enc_json.encode(msg)), **t,
              json_ratio=round(t["json_msgspec_us"] / t["json_ours_us"], 2),
              msgpack_ratio=round(t["msgpack_msgspec_us"] / t["msgpack_ours_us"], 2))
    bad_frame = json.dumps({"type": "call.ice", "id": "r1", "call_id": "", "candidate": {"sdpMLineIndex": -1}})
    _line(rows, kind="ws_errors", ours=_errors(lambda: validate(decode(bad_frame, Codec.JSON, max_bytes=65536))),
          msgspec=_errors(lambda: json_dec.decode(bad_frame.encode())),
          lone_surrogate_ours=_errors(lambda: decode('{"type":"ping","id":"\\ud800"}', Codec.JSON, max_bytes=65536)),
          lone_surrogate_msgspec=_errors(lambda: json_dec.decode(b'{"type":"ping","id":"\\ud800"}')))
    import pydantic

    return {"pydantic": pydantic.VERSION, "msgspec": msgspec.__version__, "rows": rows}


if __name__ == "__main__":
    _parser = argparse.ArgumentParser(prog="python -m tests.codecs_bench", description=DESCRIPTION)
    add_arguments(_parser)
    print(json.dumps(run(_parser.parse_args())))
