"""sfu.native.build: the native fan-out's interface is declared once (fanout.h, included by fanout.c and
read for cffi's cdef), and a change to either source makes the extension stale for ``--if-stale`` and the
Makefile's venv stamp. Pure: files in a temporary folder and the built extension; no compiler runs."""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

import pytest
from cffi import FFI

from sfu.native import build
from tests.sfu.test_native_fanout import loaded

FANOUT_PATHS = ("native",)
"""The extension's build and its one header: native only (tests/conftest.py)."""

ROOT = Path(__file__).resolve().parents[2]
FUNCTION = re.compile(r"^[a-z_][\w ]*?\**\b(fo_\w+)\(", re.M)
"""A function declaration's name, at the start of a line of fanout.h."""


def _header() -> str:
    return (build.HERE / "fanout.h").read_text()


def test_the_header_is_the_only_declaration() -> None:
    """fanout.c includes fanout.h and declares none of its types again; build.py keeps no copy."""
    source = (build.HERE / "fanout.c").read_text()
    assert '#include "fanout.h"' in source
    for declared in ("struct fo_transport {", "struct fo_consumer {", "} fo_transport;", "} fo_consumer;",
                     "enum { FO_PASS"):
        assert declared in _header() and declared not in source, declared
    assert "fo_consumer {" not in (build.HERE / "build.py").read_text()


def test_cffi_reads_the_header_as_the_extension_was_built_from_it() -> None:
    cdef = build.cdef(_header())
    lines = [line.strip() for line in cdef.splitlines()]
    assert not [line for line in lines if line.startswith("#")]
    assert lines.count("...;") == 1 and build.PRIVATE_FIELDS not in lines
    FFI().cdef(cdef)  # parses
    declared = set(FUNCTION.findall(_header()))
    assert len(declared) == 14, declared
    ffi, lib = loaded()
    assert declared <= set(dir(lib)) and lib.FO_PASS == 3
    consumer = ffi.new("fo_consumer *")
    assert len(consumer.pass_ids) == lib.FO_PASS and len(consumer.mid) == 18
    assert consumer.temporal == ffi.NULL  # no temporal filter unless the consumer asks for one
    temporal = ffi.new("fo_temporal *")
    assert len(temporal.shift_start) == lib.FO_SHIFTS == 256 and len(temporal.rw_seq) == lib.FO_REWRITTEN == 1024
    transport_fields = {name for name, _ in ffi.typeof("fo_transport").fields}
    assert transport_fields == {"fd", "twcc_seq", "sent_packets", "sent_bytes", "dropped", "send_errors",
                                "last_errno"}  # the private ones stay fanout.c's


def test_a_header_without_the_private_fields_line_is_refused() -> None:
    with pytest.raises(ValueError, match="FO_TRANSPORT_PRIVATE"):
        build.cdef(_header().replace(build.PRIVATE_FIELDS, ""))


def test_a_header_cffi_cannot_read_fails_the_build_not_the_command(tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """The build never raises: a bad header is a failed build (the SFU keeps its Python fan-out)."""
    shutil.copy(build.HERE / "fanout.c", tmp_path / "fanout.c")
    (tmp_path / "fanout.h").write_text(_header().replace(build.PRIVATE_FIELDS, ""))
    monkeypatch.setattr(build, "HERE", tmp_path)
    ok, what = build.build()
    assert not ok and what.startswith("build failed:") and build.PRIVATE_FIELDS in what
    assert not list(tmp_path.glob("_fanout.*.so"))


def _sources(folder: Path, so_at: float, c_at: float, h_at: float) -> None:
    for name, at in (("_fanout.cpython-311-x86_64-linux-gnu.so", so_at), ("fanout.c", c_at), ("fanout.h", h_at)):
        (folder / name).write_text(name)
        os.utime(folder / name, (at, at))


def test_if_stale_follows_the_header_too(tmp_path: Path) -> None:
    _sources(tmp_path, so_at=2000, c_at=1000, h_at=1000)
    assert build.current(tmp_path)
    _sources(tmp_path, so_at=2000, c_at=1000, h_at=3000)
    assert not build.current(tmp_path)
    _sources(tmp_path, so_at=2000, c_at=3000, h_at=1000)
    assert not build.current(tmp_path)
    assert build.SOURCES == ("fanout.c", "fanout.h")


def test_the_venv_stamp_depends_on_both_sources() -> None:
    makefile = (ROOT / "Makefile").read_text()
    rule = re.search(r"^\$\(STAMP\):([^|\n]*)", makefile, re.M)
    assert rule is not None
    assert {f"sfu/native/{name}" for name in build.SOURCES} <= set(rule.group(1).split())
