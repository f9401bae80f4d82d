"""The building blocks of the answer schemas: JSON Schema fragments for OpenAPI 3.1.

Objects name their required fields and types but stay open (``additionalProperties`` allowed): a field
added later is not a broken contract.
"""

from __future__ import annotations

from typing import Any

STR, INT, BOOL, NUM = {"type": "string"}, {"type": "integer"}, {"type": "boolean"}, {"type": "number"}
UUID = {"type": "string", "format": "uuid"}
TIME = {"type": "string", "format": "date-time"}


def obj(required: dict[str, Any], optional: dict[str, Any] | None = None, description: str = "") -> dict[str, Any]:
    """An object with these required (and optional) properties."""
    schema: dict[str, Any] = {"type": "object", "properties": {**required, **(optional or {})},
                              "required": list(required)}
    if description:
        schema["description"] = description
    return schema


def ref(name: str) -> dict[str, str]:
    """A reference to a named schema of ``components.schemas``."""
    return {"$ref": f"#/components/schemas/{name}"}


def nullable(kind: str, **more: Any) -> dict[str, Any]:
    """A value of this JSON type, or null."""
    return {"type": [kind, "null"], **more}


def maybe(schema: dict[str, Any]) -> dict[str, Any]:
    """This schema (an object, a reference), or null."""
    return {"anyOf": [schema, {"type": "null"}]}


def array(items: dict[str, Any]) -> dict[str, Any]:
    """A list of these."""
    return {"type": "array", "items": items}
