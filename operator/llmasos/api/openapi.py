"""A tiny builder for structural OpenAPI v3 schemas, so the LLMJob schema reads like documentation.

Every helper requires a description: `kubectl explain` shows it, and the CRD reference in docs/ is generated from
it. The result is plain dicts in the shape apiextensions.k8s.io/v1 expects (no $ref, structural).
"""

from __future__ import annotations

from typing import Any

Schema = dict[str, Any]
QUANTITY_PATTERN = (
    r"^(\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))(([KMGTPE]i)|[numkMGTPE]|([eE](\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))))?$"
)


def _base(kind: str, description: str, **extra: Any) -> Schema:
    out: Schema = {"type": kind, "description": description}
    out.update({k: v for k, v in extra.items() if v is not None})
    return out


def rule(expression: str, message: str, field_path: str | None = None, reason: str | None = None) -> Schema:
    """A CEL validation rule (x-kubernetes-validations entry)."""
    out: Schema = {"rule": expression, "message": message}
    if field_path:
        out["fieldPath"] = field_path
    if reason:
        out["reason"] = reason
    return out


def obj(description: str, properties: dict[str, Schema] | None = None, required: list[str] | None = None,
        rules: list[Schema] | None = None, default: Any = None, preserve_unknown: bool = False,
        min_properties: int | None = None) -> Schema:
    out = _base("object", description, default=default, minProperties=min_properties)
    if properties is not None:
        out["properties"] = properties
    if required:
        out["required"] = required
    if rules:
        out["x-kubernetes-validations"] = rules
    if preserve_unknown:
        out["x-kubernetes-preserve-unknown-fields"] = True
    return out


def string(description: str, *, enum: list[str] | None = None, default: str | None = None,
           pattern: str | None = None, fmt: str | None = None, max_length: int | None = None,
           min_length: int | None = None, rules: list[Schema] | None = None) -> Schema:
    out = _base("string", description, enum=enum, default=default, pattern=pattern, format=fmt,
                maxLength=max_length, minLength=min_length)
    if rules:
        out["x-kubernetes-validations"] = rules
    return out


def integer(description: str, *, default: int | None = None, minimum: int | None = None,
            maximum: int | None = None, fmt: str | None = "int32") -> Schema:
    return _base("integer", description, default=default, minimum=minimum, maximum=maximum, format=fmt)


def number(description: str, *, default: float | None = None, minimum: float | None = None,
           maximum: float | None = None, exclusive_minimum: bool | None = None) -> Schema:
    return _base("number", description, default=default, minimum=minimum, maximum=maximum,
                 exclusiveMinimum=exclusive_minimum)


def boolean(description: str, *, default: bool | None = None) -> Schema:
    return _base("boolean", description, default=default)


def array(description: str, items: Schema, *, max_items: int | None = None, min_items: int | None = None,
          list_type: str | None = None) -> Schema:
    out = _base("array", description, maxItems=max_items, minItems=min_items)
    out["items"] = items
    if list_type:
        out["x-kubernetes-list-type"] = list_type
    return out


def quantity(description: str, default: str | None = None) -> Schema:
    """A Kubernetes resource quantity ("8", "500m", "64Gi")."""
    out: Schema = {"x-kubernetes-int-or-string": True, "description": description,
                   "anyOf": [{"type": "integer"}, {"type": "string"}], "pattern": QUANTITY_PATTERN}
    if default is not None:
        out["default"] = default
    return out


def defaults_of(properties: dict[str, Schema]) -> dict[str, Any]:
    """The fields' own defaults, as the default of the object that holds them: the object's default then says
    nothing its fields do not already say."""
    return {name: node["default"] for name, node in properties.items() if "default" in node}


def field_at(schema: Schema, path: str) -> Schema:
    """The schema of the field at a dotted path of property names below `schema` ("carbon.safetyMargin")."""
    node = schema
    for name in path.split("."):
        try:
            node = node["properties"][name]
        except KeyError:
            raise KeyError(f"the schema has no field {path!r}") from None
    return node


def embedded(description: str) -> Schema:
    """A Kubernetes object passed through as-is (EnvVar, Volume, ...), validated again where it is used."""
    return {"type": "object", "description": description, "x-kubernetes-preserve-unknown-fields": True}
