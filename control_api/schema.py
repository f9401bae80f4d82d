"""Declared request shapes: one description validates a body and writes its OpenAPI schema.

Because the same :class:`Schema` object checks the input and describes it in ``/api/openapi.json``,
the document cannot drift from what the handlers accept. Every bad field is named in the error.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from control_api.errors import UnreadableFields, ValidationFailed

_EMAIL = re.compile(r"^[^@\s]{1,64}@[^@\s]+\.[^@\s]+$")
_SURROGATE = re.compile("[\ud800-\udfff]")


class NestedProblems(ValueError):
    """The problems inside an object or array value, each named by its path below the field
    (``.media_id``, ``[0].media_id``): the body's error names ``attachments[0].media_id``, not ``attachments``."""

    def __init__(self, problems: dict[str, str], unreadable: bool) -> None:
        super().__init__("; ".join(f"{path} {why}" for path, why in problems.items()))
        self.problems = problems
        self.unreadable = unreadable
        """True when one of them is text that is not Unicode (the whole request is a 400)."""


class UnreadableText(ValueError):
    """A string that is not Unicode text (a lone surrogate, which JSON's ``\\ud800`` escape can carry
    and no UTF-8 database column can hold): the request is malformed (400), not merely invalid."""


def unreadable(text: str) -> bool:
    """True when ``text`` holds a lone surrogate (it cannot be encoded as UTF-8)."""
    return _SURROGATE.search(text) is not None


@dataclass(frozen=True)
class Field:
    """One value of a JSON body or query string."""

    kind: str
    """``string``, ``integer``, ``number``, ``boolean``, ``array``, ``object``, ``email``, ``uuid`` or ``date``."""
    required: bool = True
    """A missing required field is an error; a missing optional one is left out of the result."""
    min_len: int | None = None
    """Minimum string length or array size."""
    max_len: int | None = None
    """Maximum string length or array size."""
    minimum: float | None = None
    """Smallest number allowed."""
    maximum: float | None = None
    """Largest number allowed."""
    pattern: str | None = None
    """Regular expression a string must match in full."""
    choices: tuple[str, ...] = ()
    """Allowed values of a string (an OpenAPI enum)."""
    items: Field | None = None
    """Shape of each element of an array."""
    shape: Schema | None = None
    """Shape of an object value."""
    nullable: bool = False
    """``null`` is accepted (and kept) as a value."""
    description: str = ""
    """Shown in the OpenAPI document."""

    def __post_init__(self) -> None:
        if self.kind not in {"string", "integer", "number", "boolean", "array", "email", "uuid", "date", "object"}:
            raise ValueError(f"unknown field kind {self.kind!r}")
        if self.kind == "array" and self.items is None:
            raise ValueError("an array field needs items")
        if self.kind == "object" and self.shape is None:
            raise ValueError("an object field needs a shape")

    def check(self, value: Any, from_query: bool = False) -> Any:
        """The parsed value, or ValueError with a reason a person can read (:class:`UnreadableText`
        when a string is not Unicode text, whatever kind the field is)."""
        if isinstance(value, str) and unreadable(value):
            raise UnreadableText("must be Unicode text (a lone surrogate such as \\ud800 is not)")
        if value is None:
            if self.nullable:
                return None
            raise ValueError("must not be null")
        kind = self.kind
        if from_query and kind in {"integer", "number"}:
            try:
                value = int(value) if kind == "integer" else float(value)
            except ValueError:
                raise ValueError(f"must be {'an integer' if kind == 'integer' else 'a number'}") from None
        if from_query and kind == "boolean" and value in {"true", "false"}:
            value = value == "true"
        if kind in {"string", "email", "uuid", "date"}:
            if not isinstance(value, str):
                raise ValueError("must be a string")
            return self._string(value)
        if kind == "integer":
            if isinstance(value, bool) or not isinstance(value, int):
                raise ValueError("must be an integer")
            return self._bounded(value)
        if kind == "number":
            if isinstance(value, bool) or not isinstance(value, int | float) or value != value:
                raise ValueError("must be a number")
            return self._bounded(float(value))
        if kind == "boolean":
            if not isinstance(value, bool):
                raise ValueError("must be true or false")
            return value
        if kind == "object":
            assert self.shape is not None
            try:
                return self.shape.parse(value)
            except ValidationFailed as exc:
                raise NestedProblems({f".{k}": v for k, v in sorted(exc.fields.items())},
                                     isinstance(exc, UnreadableFields)) from None
        if not isinstance(value, list):
            raise ValueError("must be an array")
        self._length(len(value), "items")
        assert self.items is not None
        out, problems, malformed = [], {}, False
        for i, item in enumerate(value):
            try:
                out.append(self.items.check(item))
            except NestedProblems as exc:
                problems.update({f"[{i}]{path}": why for path, why in exc.problems.items()})
                malformed = malformed or exc.unreadable
            except ValueError as exc:
                problems[f"[{i}]"] = str(exc)
                malformed = malformed or isinstance(exc, UnreadableText)
        if problems:
            raise NestedProblems(problems, malformed)
        return out

    def _length(self, n: int, unit: str) -> None:
        if self.min_len is not None and n < self.min_len:
            raise ValueError(f"must have at least {self.min_len} {unit}")
        if self.max_len is not None and n > self.max_len:
            raise ValueError(f"must have at most {self.max_len} {unit}")

    def _bounded(self, value: float) -> Any:
        if self.minimum is not None and value < self.minimum:
            raise ValueError(f"must be >= {self.minimum:g}")
        if self.maximum is not None and value > self.maximum:
            raise ValueError(f"must be <= {self.maximum:g}")
        return value

    def _string(self, value: str) -> Any:
        if "\x00" in value:
            raise ValueError("must not contain NUL characters")
        self._length(len(value), "characters")
        if self.choices and value not in self.choices:
            raise ValueError(f"must be one of {', '.join(self.choices)}")
        if self.pattern is not None and not re.fullmatch(self.pattern, value):
            raise ValueError(f"must match {self.pattern}")
        if self.kind == "email":
            if not _EMAIL.match(value) or len(value) > 320:
                raise ValueError("must be an email address")
            return value.strip()
        if self.kind == "uuid":
            try:
                return uuid.UUID(value)
            except ValueError:
                raise ValueError("must be a UUID") from None
        if self.kind == "date":
            try:
                if not re.fullmatch(r"\d{4}-\d{2}-\d{2}", value):
                    raise ValueError
                return date.fromisoformat(value)
            except ValueError:
                raise ValueError("must be a date (YYYY-MM-DD)") from None
        return value

    def openapi(self) -> dict[str, Any]:
        base = {"email": ("string", "email"), "uuid": ("string", "uuid"), "date": ("string", "date")}
        tp, fmt = base.get(self.kind, (self.kind, None))
        out: dict[str, Any] = {"type": [tp, "null"] if self.nullable else tp}
        if fmt:
            out["format"] = fmt
        if self.description:
            out["description"] = self.description
        if self.kind == "object":
            assert self.shape is not None
            return {**self.shape.openapi(), **({"description": self.description} if self.description else {})}
        if self.kind == "array":
            assert self.items is not None
            out["items"] = self.items.openapi()
            if self.min_len is not None:
                out["minItems"] = self.min_len
            if self.max_len is not None:
                out["maxItems"] = self.max_len
        elif tp == "string":
            if self.min_len is not None:
                out["minLength"] = self.min_len
            if self.max_len is not None:
                out["maxLength"] = self.max_len
            if self.pattern is not None:
                out["pattern"] = f"^(?:{self.pattern})$"
            if self.choices:
                out["enum"] = list(self.choices) + ([None] if self.nullable else [])
        else:
            if self.minimum is not None:
                out["minimum"] = self.minimum
            if self.maximum is not None:
                out["maximum"] = self.maximum
        return out


@dataclass(frozen=True)
class Schema:
    """A JSON object (a body) or a set of query parameters; unknown names are refused."""

    fields: Mapping[str, Field] = field(default_factory=dict)
    """The accepted names and their shapes."""

    def parse(self, data: Any, from_query: bool = False) -> dict[str, Any]:
        """The checked values; raises ValidationFailed naming every bad field at once, or
        UnreadableFields (a 400) when any name or text is not Unicode text."""
        if not isinstance(data, Mapping):
            raise ValidationFailed({"body": "must be a JSON object"})
        problems: dict[str, str] = {}
        out: dict[str, Any] = {}
        malformed = False
        for name in data:
            if name not in self.fields:
                problems[str(name)] = "is not a known field"
                malformed = malformed or unreadable(str(name))
        for name, spec in self.fields.items():
            if name not in data:
                if spec.required:
                    problems[name] = "is required"
                continue
            try:
                out[name] = spec.check(data[name], from_query=from_query)
            except NestedProblems as exc:
                problems.update({f"{name}{path}": why for path, why in exc.problems.items()})
                malformed = malformed or exc.unreadable
            except ValueError as exc:
                problems[name] = str(exc)
                malformed = malformed or isinstance(exc, UnreadableText)
        if problems:
            raise (UnreadableFields if malformed else ValidationFailed)(problems)
        return out

    def openapi(self) -> dict[str, Any]:
        return {
            "type": "object",
            "properties": {name: spec.openapi() for name, spec in self.fields.items()},
            "required": [name for name, spec in self.fields.items() if spec.required],
            "additionalProperties": False,
        }

    def query_parameters(self) -> list[dict[str, Any]]:
        return [
            {"name": name, "in": "query", "required": spec.required, "schema": spec.openapi()}
            for name, spec in self.fields.items()
        ]
