"""The validator of REST v1's JSON Schemas (schema.py holds them): the keywords the table uses
(type, properties, required, additionalProperties false, items, min/maxItems, min/maxLength,
pattern, enum, minimum, maximum, format date-time), and path or query text read as its type.
A schema using another keyword fails at import (check_known), not in a request.
"""
import re
from datetime import UTC, datetime

KNOWN = {"type", "properties", "required", "additionalProperties", "items", "minItems",
         "maxItems", "minLength", "maxLength", "pattern", "enum", "minimum", "maximum", "format",
         "description", "default", "examples", "nullable_doc"}


class Invalid(Exception):
    def __init__(self, where: str, message: str):
        super().__init__(f"{where}: {message}")
        self.where, self.message = where, message


def check_known(schema):
    unknown = set(schema) - KNOWN
    assert not unknown, f"schema keyword(s) the validator does not enforce: {unknown}"
    for sub in list((schema.get("properties") or {}).values()) + [schema.get("items")]:
        if sub:
            check_known(sub)


def parse_time(text: str) -> datetime:
    """An RFC 3339 date-time (with offset or Z) as an aware datetime."""
    if not re.fullmatch(r"[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt ][0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]+)?"
                        r"([Zz]|[+-][0-9]{2}:[0-9]{2})", text):  # ASCII digits; no trailing \n
        raise ValueError(text)
    return datetime.fromisoformat(text.upper().replace("Z", "+00:00"))


def _type_ok(kind, value) -> bool:
    kinds = kind if isinstance(kind, list) else [kind]
    return any({"object": isinstance(value, dict), "array": isinstance(value, list),
                "string": isinstance(value, str), "null": value is None,
                "boolean": isinstance(value, bool),
                "integer": isinstance(value, int) and not isinstance(value, bool),
                }[k] for k in kinds)


def validate(schema: dict, value, where: str) -> None:
    """Raise Invalid(where, what) for the first way `value` breaks `schema`."""
    kind = schema.get("type")
    if kind and not _type_ok(kind, value):
        raise Invalid(where, f"must be {'an' if kind in ('object', 'array', 'integer') else 'a'} "
                      f"{kind if isinstance(kind, str) else ' or '.join(kind)}")
    if value is None:
        return
    if "enum" in schema and value not in schema["enum"]:
        raise Invalid(where, f"must be one of {', '.join(map(str, schema['enum']))}")
    if isinstance(value, str):
        if len(value) < schema.get("minLength", 0):
            raise Invalid(where, "must not be empty" if schema["minLength"] == 1
                          else f"must have at least {schema['minLength']} characters")
        if len(value) > schema.get("maxLength", len(value)):
            raise Invalid(where, f"must have at most {schema['maxLength']} characters")
        if "pattern" in schema and not re.search(schema["pattern"], value):
            raise Invalid(where, "has an invalid format")
        if schema.get("format") == "date-time":
            try:
                parse_time(value)
            except ValueError:
                raise Invalid(where, "must be an RFC 3339 time such as 2026-01-31T09:30:00Z")
    if isinstance(value, int) and not isinstance(value, bool):
        if value < schema.get("minimum", value):
            raise Invalid(where, f"must be at least {schema['minimum']}")
        if value > schema.get("maximum", value):
            raise Invalid(where, f"must be at most {schema['maximum']}")
    if isinstance(value, list):
        if len(value) < schema.get("minItems", 0):
            raise Invalid(where, f"must have at least {schema['minItems']} item(s)")
        if len(value) > schema.get("maxItems", len(value)):
            raise Invalid(where, f"must have at most {schema['maxItems']} items")
        for index, item in enumerate(value):
            validate(schema.get("items", {}), item, f"{where}[{index}]")
    if isinstance(value, dict):
        properties = schema.get("properties", {})
        if schema.get("additionalProperties") is False:
            unknown = sorted(set(value) - set(properties))
            if unknown:
                raise Invalid(unknown[0], f"unknown field (allowed: "
                              f"{', '.join(sorted(properties))})")
        for name in schema.get("required", []):
            if name not in value:
                raise Invalid(name, "is required")
        for name, sub in properties.items():
            if name in value:
                validate(sub, value[name], name if where == "body" else f"{where}.{name}")


_WHOLE = re.compile(r"0|-?[1-9][0-9]*")


def coerce_query(schema: dict, name: str, raw: str):
    """A query-string or path value as the type its schema says (integers arrive as text, in
    one spelling only: ASCII digits without sign, spaces, underscores or leading zeros, so
    `+5`, ` 5`, `05` and `٥` are not 5)."""
    if schema.get("type") == "integer":
        if not _WHOLE.fullmatch(raw) or len(raw) > 20:
            raise Invalid(name, "must be a whole number written in ASCII digits")
        return int(raw)
    return raw


def rfc3339(ms) -> str | None:
    if ms is None:
        return None
    return datetime.fromtimestamp(ms / 1000, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def epoch_ms(text: str) -> int:
    return int(parse_time(text).timestamp() * 1000)
