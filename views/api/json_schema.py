"""How the declarations' pydantic models read as JSON Schema in the OpenAPI document.

Pydantic's generator, with Tally's conventions:
- no `title` on models and fields (the component's name says it; descriptions explain);
- an answer's field that defaults to None is left out while it is None (schemas/common.py
  `Answer`), so it is optional and never null; every other answer field is required;
- an answer shows no defaults, and a request field shows no `default: null` it cannot take;
- a nullable value's description sits on the whole, not inside `anyOf`;
- `Literal[True]` is `{"type": "boolean", "enum": [true]}`, not `const: true`, which
  openapi-python-client turns into Python that does not compile for optional fields.
"""

from __future__ import annotations

from typing import Any

from pydantic.json_schema import GenerateJsonSchema, JsonSchemaValue
from pydantic_core import CoreSchema, core_schema


class TallySchema(GenerateJsonSchema):
    def field_title_should_be_set(self, schema: Any) -> bool:
        return False

    def model_schema(self, schema: core_schema.ModelSchema) -> JsonSchemaValue:
        json_schema = super().model_schema(schema)
        json_schema.pop("title", None)
        return json_schema

    def field_is_required(self, field: Any, total: bool) -> bool:
        inner: CoreSchema = field["schema"]
        if self.mode == "serialization" and inner["type"] == "default":
            return inner.get("default") is not None  # None: left out while None
        return super().field_is_required(field, total)

    def default_schema(self, schema: core_schema.WithDefaultSchema) -> JsonSchemaValue:
        json_schema = super().default_schema(schema)
        if self.mode == "serialization":
            json_schema.pop("default", None)
            if schema.get("default", 0) is None:
                json_schema = without_null(json_schema)
        elif json_schema.get("default", 0) is None and not nullable(json_schema):
            json_schema.pop("default")
        return json_schema

    def nullable_schema(self, schema: core_schema.NullableSchema) -> JsonSchemaValue:
        """`X or null`, with X's description and examples on the whole (where readers look)."""
        json_schema = super().nullable_schema(schema)
        for option in json_schema.get("anyOf", []):
            for word in ("description", "examples"):
                if word in option and "$ref" not in option:
                    json_schema.setdefault(word, option.pop(word))
        return json_schema

    def literal_schema(self, schema: core_schema.LiteralSchema) -> JsonSchemaValue:
        expected = schema["expected"]
        if len(expected) == 1 and isinstance(expected[0], bool):
            return {"type": "boolean", "enum": [expected[0]]}
        return super().literal_schema(schema)


def nullable(schema: JsonSchemaValue) -> bool:
    kind = schema.get("type")
    return kind == "null" or (isinstance(kind, list) and "null" in kind) or any(
        nullable(s) for s in schema.get("anyOf", []))


def without_null(schema: JsonSchemaValue) -> JsonSchemaValue:
    """`schema` less its JSON null branch (`type: [x, null]` or `anyOf: [..., null]`)."""
    kind = schema.get("type")
    if isinstance(kind, list) and "null" in kind:
        rest = [k for k in kind if k != "null"]
        return {**schema, "type": rest[0] if len(rest) == 1 else rest}
    options = [s for s in schema.get("anyOf", []) if s.get("type") != "null"]
    if "anyOf" in schema and len(options) == 1:
        return {**options[0], **{k: v for k, v in schema.items() if k != "anyOf"}}
    if "anyOf" in schema:
        return {**schema, "anyOf": options}
    return schema
