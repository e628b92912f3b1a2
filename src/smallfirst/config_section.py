"""The base of every section of the settings tree and the checks they share.

Apart from `config.py` so that a room owning its section's schema (`privacy/policy.py`, which
`config.py` imports) shares them too, rather than a copy.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, get_args

from pydantic import BaseModel, ConfigDict, model_validator
from pydantic.fields import FieldInfo


class KeyedProblems(ValueError):
    """Raised by a validator that checks several keys: each problem names its own key,
    relative to the validated model (pydantic would put them all at the model itself)."""

    def __init__(self, problems: Sequence[tuple[str, str]]) -> None:
        super().__init__("; ".join(f"{key}: {problem}" for key, problem in problems))
        self.problems = list(problems)


class ConfigSection(BaseModel):
    # `.inf` (or `1e400`, a string to YAML) passed `ge=0`: an infinite price was printed as
    # `Infinity`, which is not JSON
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    @model_validator(mode="before")
    @classmethod
    def _no_booleans_for_numbers(cls, data: Any) -> Any:
        """`port: true` was port 1: pydantic reads a boolean as the number 0 or 1, and YAML
        reads on, off, yes and no as booleans too (`parallel: on`)."""
        if not isinstance(data, dict):
            return data
        problems = [
            (key, f"should be a number, not {str(value).lower()}")
            for key, value in data.items()
            if isinstance(value, bool) and _holds_a_number(cls.model_fields.get(key))
        ]
        if problems:
            raise KeyedProblems(problems)
        return data


def _holds_a_number(field: FieldInfo | None) -> bool:
    """Whether `field` takes an int or a float (or None), nothing else."""
    if field is None:
        return False
    kinds = set(get_args(field.annotation) or [field.annotation]) - {type(None)}
    return bool(kinds) and kinds <= {int, float}
