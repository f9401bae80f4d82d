"""Builds the native fan-out (``sfu/native/_fanout*.so``) with cffi in API mode against Debian's libsrtp2.

``python -m sfu.native.build`` (the Makefile runs it after installing the venv) builds the extension
when it can and never fails when it cannot (no compiler, no ``libsrtp2-dev``, no cffi): it says why
and exits 0, and the SFU keeps its pure-Python fan-out (``sfu.fanout = "auto"`` picks what exists).
``--strict`` exits 1 instead; ``--if-stale`` builds only when the extension is missing or older than
``fanout.c`` or ``fanout.h`` (``make test`` after ``make deps`` installed libsrtp2-dev on a machine that
had a venv). ``fanout.h`` declares the interface once: fanout.c includes it and cffi's cdef is made from it.
"""

from __future__ import annotations

import shutil
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
MODULE = "sfu.native._fanout"

SOURCES = ("fanout.c", "fanout.h")
"""What the extension is built from: a newer one makes it stale (``--if-stale``)."""
PRIVATE_FIELDS = "FO_TRANSPORT_PRIVATE"
"""The line of fanout.h where fanout.c puts the transport fields cffi need not know (``...;`` for cffi)."""


def cdef(header: str) -> str:
    """``fanout.h`` as ``ffi.cdef`` reads it: without its preprocessor lines (the include guard,
    ``<stdint.h>``), which cffi's parser refuses, and with ``...;`` for the private fields' line."""
    lines = [line for line in header.splitlines() if not line.lstrip().startswith("#")]
    private = [i for i, line in enumerate(lines) if line.strip() == PRIVATE_FIELDS]
    if len(private) != 1:
        raise ValueError(f"fanout.h must have one {PRIVATE_FIELDS} line, found {len(private)}")
    lines[private[0]] = "    ...;"
    return "\n".join(lines) + "\n"


def build() -> tuple[bool, str]:
    """(built, what happened)."""
    try:
        from cffi import FFI
    except ImportError:
        return False, "cffi is not installed"
    if not Path("/usr/include/srtp2/srtp.h").exists():
        return False, "libsrtp2-dev is not installed (/usr/include/srtp2/srtp.h)"
    with tempfile.TemporaryDirectory(prefix="sfu-native-") as tmp:
        try:
            ffi = FFI()
            ffi.cdef(cdef((HERE / "fanout.h").read_text()))
            ffi.set_source(MODULE, (HERE / "fanout.c").read_text(), libraries=["srtp2"], include_dirs=[str(HERE)],
                           extra_compile_args=["-O2", "-Wall"])
            built = Path(ffi.compile(tmpdir=tmp, verbose=False))
        except Exception as exc:  # a missing compiler, a header cffi cannot parse, a compile or link error:
            return False, f"build failed: {exc}"  # the Python path stays
        for old in HERE.glob("_fanout.*.so"):
            old.unlink()
        target = HERE / built.name
        shutil.copy2(built, target)
    return True, f"built {target}"


def current(folder: Path = HERE) -> bool:
    """The built extension exists in ``folder`` and is newer than every one of its :data:`SOURCES`."""
    source = max((folder / name).stat().st_mtime for name in SOURCES)
    return any(so.stat().st_mtime >= source for so in folder.glob("_fanout.*.so"))


def main(argv: list[str]) -> int:
    if "--if-stale" in argv and current():
        return 0
    ok, what = build()
    print(f"sfu.native: {what}" + ("" if ok else "; the SFU will use its Python fan-out"))
    return 1 if not ok and "--strict" in argv else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
