"""The native fan-out's compiled part (``_fanout``, built by :mod:`sfu.native.build`), when present."""

from __future__ import annotations

from typing import Any


def load() -> tuple[Any, Any] | str:
    """(ffi, lib) of the extension, or why it cannot be used (not built, or libsrtp2 missing)."""
    try:
        from sfu.native import _fanout  # type: ignore[attr-defined]
    except ImportError as exc:
        return f"sfu.native._fanout is not built ({exc}); run `python -m sfu.native.build`"
    return _fanout.ffi, _fanout.lib
