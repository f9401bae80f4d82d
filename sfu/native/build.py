"""Builds the native fan-out (``sfu/native/_fanout*.so``) with cffi in API mode against Debian's libsrtp2.

``python -m sfu.native.build`` (the Makefile runs it after installing the venv) builds the extension
when it can and never fails when it cannot (no compiler, no ``libsrtp2-dev``, no cffi): it says why
and exits 0, and the SFU keeps its pure-Python fan-out (``sfu.fanout = "auto"`` picks what exists).
``--strict`` exits 1 instead; ``--if-stale`` builds only when the extension is missing or older than
``fanout.c`` (``make test`` after ``make deps`` installed libsrtp2-dev on a machine that had a venv).
"""

from __future__ import annotations

import shutil
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
MODULE = "sfu.native._fanout"

CDEF = """
typedef struct fo_plane fo_plane;
typedef struct fo_transport {
    int fd;
    uint16_t twcc_seq;
    uint64_t sent_packets, sent_bytes, dropped, send_errors;
    int last_errno;
    ...;
} fo_transport;
typedef struct fo_consumer {
    fo_transport *transport;
    uint32_t ssrc;
    uint8_t payload_type;
    uint16_t seq_off;
    uint32_t ts_off;
    uint8_t ext;
    uint8_t twcc_id;
    uint8_t abs_id;
    uint8_t mid_len;
    uint8_t mid[18];
    uint8_t pass_ids[3];
    uint64_t packets, octets;
} fo_consumer;

fo_plane *fo_plane_new(int batch_max);
void fo_plane_free(fo_plane *p);
int fo_flush(fo_plane *p);
fo_transport *fo_transport_new(int profile, const uint8_t *key, int keylen);
int fo_transport_target(fo_transport *t, int fd, int family, const uint8_t *ip, int port);
void fo_transport_free(fo_plane *p, fo_transport *t);
int fo_twcc_next(fo_transport *t, double now, uint32_t size);
int fo_twcc_sent(fo_transport *t, int seq, double *at);
int fo_send(fo_plane *p, fo_transport *t, const uint8_t *packet, int len);
int fo_fanout(fo_plane *p, fo_consumer **cs, int n, int marker, uint16_t seq, uint32_t ts,
              const uint8_t *payload, int plen, const uint8_t *abs, const uint8_t *pass,
              const uint8_t *pass_len, double now, uint32_t size);
"""


def build() -> tuple[bool, str]:
    """(built, what happened)."""
    try:
        from cffi import FFI
    except ImportError:
        return False, "cffi is not installed"
    if not Path("/usr/include/srtp2/srtp.h").exists():
        return False, "libsrtp2-dev is not installed (/usr/include/srtp2/srtp.h)"
    ffi = FFI()
    ffi.cdef(CDEF)
    ffi.set_source(MODULE, (HERE / "fanout.c").read_text(), libraries=["srtp2"],
                   extra_compile_args=["-O2", "-Wall"])
    with tempfile.TemporaryDirectory(prefix="sfu-native-") as tmp:
        try:
            built = Path(ffi.compile(tmpdir=tmp, verbose=False))
        except Exception as exc:  # a missing compiler, a compile or link error: the Python path stays
            return False, f"build failed: {exc}"
        for old in HERE.glob("_fanout.*.so"):
            old.unlink()
        target = HERE / built.name
        shutil.copy2(built, target)
    return True, f"built {target}"


def current() -> bool:
    """The built extension exists and is newer than its source."""
    source = (HERE / "fanout.c").stat().st_mtime
    return any(so.stat().st_mtime >= source for so in HERE.glob("_fanout.*.so"))


def main(argv: list[str]) -> int:
    if "--if-stale" in argv and current():
        return 0
    ok, what = build()
    print(f"sfu.native: {what}" + ("" if ok else "; the SFU will use its Python fan-out"))
    return 1 if not ok and "--strict" in argv else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
