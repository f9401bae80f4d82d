"""VP8 temporal layers on the native fan-out: a native consumer's filter state lives in its C record.

The Python path filters in :class:`~sfu.temporal.TemporalFilter` and the consumer (``_forward_temporal``:
dropped packets shift its sequence offset, :class:`~sfu.temporal.SeqShifts` maps NACKs back, rewritten
payloads are kept for them). On the native path ``fo_fanout`` (``sfu/native/fanout.c``) does the same per
packet for every consumer whose record points to an ``fo_temporal``: parse the payload descriptor once,
step each consumer's filter, drop (shifting its offset) or copy and rewrite picture id and TL0PICIDX
in place. Python keeps deciding: ``sfu.simulcast`` sets the target, the consumer sets ``rebase`` at a
switch, reads ``seen`` and ``dropped``, and answers NACKs through the views here.

:class:`NativeTemporal` is a :class:`~sfu.temporal.TemporalFilter` whose fields are the C struct's, so
everything that reads or sets a filter reads or sets the one the fan-out steps.
"""

from __future__ import annotations

from typing import Any

from sfu.temporal import SeqShifts, TemporalFilter, parse, rewrite


class _Field:
    """A TemporalFilter attribute stored in the ``fo_temporal`` struct (``as_bool``: a flag)."""

    def __init__(self, as_bool: bool = False) -> None:
        self.as_bool = as_bool
        self.name = ""

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    def __get__(self, obj: NativeTemporal | None, owner: type) -> Any:
        if obj is None:
            return self
        value = getattr(obj.f, self.name)
        return bool(value) if self.as_bool else int(value)

    def __set__(self, obj: NativeTemporal, value: int) -> None:
        setattr(obj.f, self.name, int(value))


class _Last:
    """``last_pid``/``last_tl0``: None until one is sent (a flag beside the value in C)."""

    def __init__(self) -> None:
        self.name = ""

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    def __get__(self, obj: NativeTemporal | None, owner: type) -> Any:
        if obj is None:
            return self
        return int(getattr(obj.f, self.name)) if getattr(obj.f, "has_" + self.name) else None

    def __set__(self, obj: NativeTemporal, value: int | None) -> None:
        setattr(obj.f, "has_" + self.name, 0 if value is None else 1)
        setattr(obj.f, self.name, 0 if value is None else value)


class NativeTemporal(TemporalFilter):
    """A filter whose state is an ``fo_temporal`` (``f``) the fan-out steps per packet."""

    target = _Field()  # type: ignore[assignment]
    current = _Field()  # type: ignore[assignment]
    dropping = _Field(as_bool=True)  # type: ignore[assignment]
    dropped = _Field()  # type: ignore[assignment]
    pid_off = _Field()  # type: ignore[assignment]
    tl0_off = _Field()  # type: ignore[assignment]
    last_pid = _Last()  # type: ignore[assignment]
    last_tl0 = _Last()  # type: ignore[assignment]
    rebase = _Field(as_bool=True)  # type: ignore[assignment]
    seen = _Field(as_bool=True)  # type: ignore[assignment]

    def __init__(self, ffi: Any, lib: Any) -> None:
        self.f = ffi.new("fo_temporal *")
        self.lib = lib
        super().__init__()  # the initial state, written into the struct

    def shifts(self) -> NativeShifts | None:
        """The consumer's sequence offset changes (None: nothing dropped since the last switch)."""
        return NativeShifts(self) if self.f.shifting else None

    def set_shifts(self, shifts: SeqShifts | None) -> None:
        f = self.f
        f.shifting, f.shift_n, f.shift_head = 0, 0, 0
        if shifts is not None:
            f.shifting, f.shift_base = 1, shifts.base
            for start, off in shifts.changes[-len(f.shift_start):]:
                k = f.shift_n
                f.shift_start[k], f.shift_off[k] = start, off
                f.shift_n = k + 1

    def resent(self, s: int, payload: bytes) -> bytes:
        """The payload our number ``s`` carried (``Consumer._resent``): rewritten as it was sent, when it was."""
        f, k = self.f, s & (len(self.f.rw_seq) - 1)
        if f.rw_seq[k] != s + 1:
            return payload
        d = parse(payload)
        return payload if d is None else rewrite(payload, d, int(f.rw_pid[k]), int(f.rw_tl0[k]))


class NativeShifts(SeqShifts):
    """A view of the shifts in a native filter's struct (``offset_of`` in C; ``base`` and ``changes`` are
    not kept here: :meth:`copy` reads them)."""

    def __init__(self, temporal: NativeTemporal) -> None:  # no super().__init__: the state is the struct's
        self.temporal = temporal

    def drop(self, seq: int, offset: int) -> None:
        self.temporal.lib.fo_shift_drop(self.temporal.f, seq, offset)

    def offset_of(self, s: int) -> int:
        return int(self.temporal.lib.fo_shift_offset_of(self.temporal.f, s))

    def copy(self) -> SeqShifts:
        """What the struct holds now, as a :class:`SeqShifts` of its own (kept past a reset)."""
        f = self.temporal.f
        keep = len(f.shift_start)
        kept = SeqShifts(int(f.shift_base))
        kept.changes = [(int(f.shift_start[(f.shift_head + k) % keep]), int(f.shift_off[(f.shift_head + k) % keep]))
                        for k in range(f.shift_n)]
        return kept
