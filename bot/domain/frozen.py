"""Frozen settings models: unknown keys rejected, loose numbers refused.

Every section of the config and every strategy's parameters is a `FrozenModel`.
"""

from __future__ import annotations

from decimal import Decimal
from types import UnionType
from typing import Annotated, Any, Union, get_args, get_origin

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator
from pydantic_core import PydanticCustomError

Fraction = Annotated[Decimal, Field(ge=0, le=1)]
PositiveDecimal = Annotated[Decimal, Field(gt=0)]
NonNegativeDecimal = Annotated[Decimal, Field(ge=0)]


def _numeric_kinds(annotation: Any) -> set[type]:
    """The number types an annotation accepts, through Optional/Union/Annotated."""
    if annotation in (int, float, Decimal):
        return {annotation}
    kinds: set[type] = set()
    if get_origin(annotation) in (Union, UnionType, Annotated):
        for arg in get_args(annotation):
            kinds |= _numeric_kinds(arg)
    return kinds


def _refuse_loose_number(value: Any, kinds: set[type], where: str = "") -> None:
    if isinstance(value, bool):
        raise PydanticCustomError(
            "bool_is_not_a_number",
            f"{where}must be a number, not a boolean (write e.g. 2, not true)",
        )
    if isinstance(value, str) and kinds & {int, float}:
        raise PydanticCustomError(
            "str_is_not_a_number", f'{where}must be a number, not a string (write 2, not "2")'
        )


class FrozenModel(BaseModel):
    """A frozen config model that rejects unknown keys, and loose numbers.

    Pydantic's lax mode would read `leverage = true` as 1 and `"2"` as 2: an int or float key
    takes only a TOML number (a Decimal key also takes an exact decimal string, never a bool).
    """

    model_config = ConfigDict(frozen=True, extra="forbid", validate_default=True)

    @field_validator("*", mode="before")
    @classmethod
    def _strict_numbers(cls, value: Any, info: ValidationInfo) -> Any:
        field = cls.model_fields.get(info.field_name or "")
        if field is None:
            return value
        annotation = field.annotation
        if annotation is bool:
            return value
        kinds = _numeric_kinds(annotation)
        if kinds:
            _refuse_loose_number(value, kinds)
        elif get_origin(annotation) is dict and isinstance(value, dict):
            inner = _numeric_kinds(get_args(annotation)[-1])
            for key, item in value.items() if inner else ():
                _refuse_loose_number(item, inner, f"the value of {key} ")
        return value
