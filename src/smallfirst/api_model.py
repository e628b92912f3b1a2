"""The base of every request model: OpenAI's strictness (an unknown field or a value of the
wrong JSON type is a 400, null is the default) and the error that names the field to blame."""

from __future__ import annotations

import functools
from typing import Any, get_args

from pydantic import BaseModel, ConfigDict, model_validator


class FieldError(ValueError):
    """A check across fields that blames one of them: the 400 names it in `param`, as OpenAI
    does (a plain ValueError from a model's check has no field to name)."""

    def __init__(self, param: str, message: str, code: str | None = None) -> None:
        super().__init__(message)
        self.param = param
        self.code = code  # OpenAI's, where it has one for this check


NAME_PATTERN = r"^[A-Za-z0-9_-]{1,64}$"  # of functions and response formats


class ApiModel(BaseModel):
    """A request body or a part of one. As the OpenAI API has it, an unknown field is a 400
    (nothing is dropped silently), and so is a value of the wrong JSON type: "3" is not the
    integer 3, nor `true` the number 1."""

    model_config = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False)

    @model_validator(mode="before")
    @classmethod
    def _null_is_the_default(cls, data: Any) -> Any:
        """OpenAI's fields are nullable, null meaning "the default" (`"n": null` is n = 1);
        a field of ours that takes no None reads null so too."""
        if isinstance(data, dict) and None in data.values():
            defaulted = _defaulted_without_none(cls)
            data = {k: v for k, v in data.items() if v is not None or k not in defaulted}
        return data


@functools.cache
def _defaulted_without_none(model: type[BaseModel]) -> frozenset[str]:
    """The body names of `model`'s fields that have a default and do not take None."""
    return frozenset(
        field.alias or name
        for name, field in model.model_fields.items()
        if not field.is_required() and not _takes_none(field.annotation)
    )


def _takes_none(annotation: Any) -> bool:
    return annotation is None or annotation is Any or type(None) in get_args(annotation)
