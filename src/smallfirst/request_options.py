"""The options of a request that are objects of their own in OpenAI's API: stream options,
the answer's format, and the tools offered with the choice among them."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, model_validator

from smallfirst.api_model import NAME_PATTERN, ApiModel, FieldError


class StreamOptions(ApiModel):
    include_usage: bool = False
    # OpenAI pads streamed events against size side channels unless this is false. No stream
    # here is padded (nor asked of an upstream), so either value changes nothing.
    include_obfuscation: bool | None = None


class JsonSchemaSpec(ApiModel):
    name: str = Field(default="response", pattern=NAME_PATTERN)  # OpenAI's; its default: ours
    description: str | None = None
    schema_: dict[str, Any] = Field(default_factory=dict, alias="schema")
    strict: bool | None = None


class ResponseFormat(ApiModel):
    type: Literal["text", "json_object", "json_schema"]
    json_schema: JsonSchemaSpec | None = None

    @model_validator(mode="after")
    def _schema_present(self) -> ResponseFormat:
        if self.type == "json_schema" and self.json_schema is None:
            raise FieldError("json_schema", "json_schema is required when type is json_schema")
        return self


class FunctionDefinition(ApiModel):
    name: str = Field(pattern=NAME_PATTERN)
    description: str | None = None
    parameters: dict[str, Any] | None = None
    strict: bool | None = None


class Tool(ApiModel):
    type: Literal["function"]
    function: FunctionDefinition


class FunctionName(ApiModel):
    name: str


class NamedToolChoice(ApiModel):
    type: Literal["function"]
    function: FunctionName


class AllowedTools(ApiModel):
    mode: Literal["auto", "required"]
    tools: list[NamedToolChoice] = Field(min_length=1)


class AllowedToolsChoice(ApiModel):
    """OpenAI's `allowed_tools`: the answer may call these of the offered tools only (the
    whole list stays in the request so that a provider's prompt cache keeps it)."""

    type: Literal["allowed_tools"]
    allowed_tools: AllowedTools
