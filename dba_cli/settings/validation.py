"""How every config model is validated, and how its problems become one readable line.

Validation is pydantic's; `config_error` turns its report into one message per
problem that names the field path (and the file, for recipes) and, for an
unknown key, suggests the nearest known one. Values are quoted as short
excerpts: a recipe may hold a huge string or list. Nothing here imports torch.
"""

from __future__ import annotations

import difflib
import math
import re
import reprlib
from collections.abc import Callable
from typing import Annotated, Any, get_args, get_origin

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError
from pydantic.dataclasses import is_pydantic_dataclass
from pydantic.fields import FieldInfo

from ..errors import ConfigError

MAX_PROBLEMS = 10  # problems listed in one error message; the rest are counted


class Strict(BaseModel):
    """Base for every config model: unknown keys are errors, values are immutable."""

    model_config = ConfigDict(extra="forbid", frozen=True)


# Training runs in float32: a float setting above its largest finite value (a learning rate of 1e39) would
# overflow inside torch. Integers are bounded by their digits before Python converts them (it refuses strings
# of more than 4,300 digits, and every integer bound here has fewer than 20).
FLOAT32_MAX = 3.4028234663852886e38
MAX_INT_DIGITS = 30


def number(value: Any) -> Any:
    """Accept ints, floats and numeric text (YAML 1.1 reads `1e-3` as text) that float32 can hold; never booleans or NaN."""
    if isinstance(value, bool):
        raise ValueError("must be a number, not true/false")
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            raise ValueError(f"must be a number, got {excerpt(value)}") from None
    if isinstance(value, int) and too_many_digits(value):
        raise ValueError(f"is too large: a whole number of more than {MAX_INT_DIGITS} digits")
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError("must be a finite number")
    if isinstance(value, (int, float)) and abs(value) > FLOAT32_MAX:
        raise ValueError(f"is too large: training computes in float32, which holds at most {FLOAT32_MAX:.7g}")
    return value


def too_many_digits(value: int) -> bool:
    """More than MAX_INT_DIGITS decimal digits (measured without converting to text, which Python limits)."""
    return abs(value) >= 10**MAX_INT_DIGITS


def whole_number(text: str) -> int:
    """`int(text)` for text a user typed, with its digits bounded first: ValueError "too large" or "not a whole number"."""
    digits = sum(character.isdigit() for character in text)
    if digits > MAX_INT_DIGITS:
        raise ValueError(f"too large: {digits:,} digits (at most {MAX_INT_DIGITS})")
    return int(text)


Int = Annotated[int, Field(strict=True)]
Float = Annotated[float, BeforeValidator(number)]


def config_error(
    exc: ValidationError, model: type[BaseModel], source: str | None = None, where: Callable[[tuple], tuple] | None = None
) -> ConfigError:
    """Every problem on one line, `; `-separated: `[file: ]field.path: what is wrong (got X)`.

    Values are quoted as short excerpts (a recipe may hold a huge string or
    list), and at most MAX_PROBLEMS problems are listed, the rest counted.
    `where` maps a field path of `model` to the path the user wrote it at
    (a recipe's `methods.sgd.lr` for a run's `lr`).
    """
    errors = [field_of_model_error(error, model) for error in exc.errors(include_url=False)]
    lines = []
    for error in errors[:MAX_PROBLEMS]:
        loc = where(tuple(error["loc"])) if where is not None else error["loc"]
        key = loc[-2] if len(loc) >= 2 and loc[-1] == "[key]" else None  # a bad key of a dict, e.g. a method name
        if key is not None:
            loc = loc[:-2]
        path = ".".join(readable(part) for part in loc) or "(top level)"
        message = cut(" ".join(error["msg"].removeprefix("Value error, ").split()), 300)
        if error["type"] in ("extra_forbidden", "unexpected_keyword_argument"):  # a model's, a dataclass's
            known = known_fields(model, tuple(error["loc"][:-1]))
            close = difflib.get_close_matches(str(error["loc"][-1])[:100], known, n=1, cutoff=0.6)
            message = "unknown key" + (f"; did you mean {close[0]!r}?" if close else "")
            message += f" Known keys here: {', '.join(known)}."
        elif key is not None:
            message = f"key {excerpt(key)} {message}"
        elif error["type"] != "missing" and not isinstance(error.get("input"), dict):
            shown = excerpt(error.get("input"))
            if shown not in message:
                message += f" (got {shown})"
        prefix = f"{source}: " if source else ""
        lines.append(f"{prefix}{path}: {message}")
    if len(errors) > MAX_PROBLEMS:
        lines.append(f"and {len(errors) - MAX_PROBLEMS} more problems")
    return ConfigError("; ".join(lines))


def field_of_model_error(error: dict, model: type[BaseModel]) -> dict:
    """A model validator's "field: problem" message as that field's error, so it is reported at the field's path.

    (A validator of a whole model, top level or nested, can only raise at the model's own path.)
    """
    message = error["msg"].removeprefix("Value error, ")
    match = re.match(r"([a-z_]+): ", message)
    loc = tuple(error["loc"])
    if match is None or match.group(1) not in known_fields(model, loc):
        return error
    return {**error, "loc": (*loc, match.group(1)), "msg": message[match.end():], "type": "value_error", "input": {}}


def make_config(
    model: type[BaseModel], values: dict, source: str | None = None, where: Callable[[tuple], tuple] | None = None
):
    """Validate `values` into `model`, or raise ConfigError naming each bad field (see `config_error`)."""
    try:
        return model.model_validate(values)
    except ValidationError as exc:
        raise config_error(exc, model, source, where) from None


_short = reprlib.Repr()
_short.maxlevel, _short.maxdict, _short.maxlist, _short.maxtuple, _short.maxset = 2, 3, 4, 4, 4
_short.maxstring, _short.maxother, _short.maxlong = 60, 60, 40


def excerpt(value: object, limit: int = 80) -> str:
    """A short repr of `value` for error messages: nested and long values elided, at most ~`limit` characters."""
    return cut(_short.repr(value), limit)


def cut(text: str, limit: int) -> str:
    """`text` cut to `limit` characters with '…' at the end when it was longer."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


def readable(part: object) -> str:
    """A field path part as typed, or quoted when it holds line breaks or other unprintable characters; long ones cut."""
    text = str(part)
    if text.isprintable() and text.strip() == text and text:
        return cut(text, 40)
    return excerpt(text, 40)


def fields_of(model: type) -> dict[str, FieldInfo]:
    """The fields of a pydantic model or pydantic dataclass (like DBAConfig), in declaration order."""
    if isinstance(model, type) and issubclass(model, BaseModel):
        return model.model_fields
    return model.__pydantic_fields__


def is_model(annotation: Any) -> bool:
    return isinstance(annotation, type) and (issubclass(annotation, BaseModel) or is_pydantic_dataclass(annotation))


def known_fields(model: type[BaseModel], loc: tuple) -> list[str]:
    """The field names of the (nested) model found at `loc`; [] when it cannot be followed."""
    current: type | None = model
    skip_key = False
    for part in loc:
        if skip_key:  # the free key of a dict of models, like a recipe's method names
            skip_key = False
            continue
        field = fields_of(current).get(part) if current is not None else None
        if field is None:
            return []
        current, skip_key = nested_model(field.annotation)
    return list(fields_of(current)) if current is not None else []


def nested_model(annotation: Any) -> tuple[type | None, bool]:
    """The model inside `X`, `X | None` or `dict[str, X]`, and whether a dict key comes first."""
    if get_origin(annotation) is dict:
        return nested_model(get_args(annotation)[1])[0], True
    if is_model(annotation):
        return annotation, False
    for arg in get_args(annotation):
        found, keyed = nested_model(arg)
        if found is not None:
            return found, keyed
    return None, False
