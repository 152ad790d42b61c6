"""The validated configuration of one training run.

Every entry point (`dba run`, recipes, Python users) builds a `RunConfig`.
Validation is pydantic's; `config_error` turns its report into one message per
problem that names the field path (and the file, for recipes) and, for an
unknown key, suggests the nearest known one. Nothing trains on a bad value.

Each setting is declared once and the rest is derived: DBA's settings are the
engine's own `DBAConfig` (dba/config.py), activations are `models.ACTIVATIONS`,
methods and optimizers are METHODS and OPTIMIZERS below; the recipes' specs
reuse these types and `dba run` takes its choices, defaults and help from the
fields. Nothing here imports torch: `--help` and recipes read this module.
"""

from __future__ import annotations

import difflib
import math
import re
import reprlib
from typing import Annotated, Any, Literal, get_args, get_origin

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, model_validator
from pydantic.dataclasses import is_pydantic_dataclass
from pydantic.fields import FieldInfo

from .data.subsets import parse_subset
from .dba.config import DBAConfig
from .errors import ConfigError
from .data import DATASETS
from .models import ACTIVATIONS, ARCHITECTURES

OPTIMIZERS = ("sgd", "adam")  # the torch optimizers a run can use, DBA's base included
METHODS = (*OPTIMIZERS, "dba")
DEFAULT_LR = {"sgd": 0.1, "adam": 0.001}
PROTOCOL_FIELDS = ("validation_size", "subset_draw", "resample")
# Fields added after results existed: left out of a saved config at their defaults (MNIST, the MLP),
# so results made before them stay current and comparable.
SETTING_FIELDS = ("dataset", "architecture")
MAX_PROBLEMS = 10  # problems listed in one error message; the rest are counted

# Names that become folder or file names under the results folder (recipe and method
# names, and every part of a result path): ASCII letters, digits and . _ - +, starting
# with a letter or digit, never '..'. No '/', no '\\', no NUL, no leading '.' or '-',
# so a name can neither leave the results folder nor hide, nor read as an option.
NAME_CHARACTERS = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+-]*")
MAX_NAME_LENGTH = 64  # names in a recipe
MAX_PATH_PART_LENGTH = 128  # parts of a result path, which also holds generated labels (tuning, ablation)
NAME_RULE = "letters, digits, '.', '_', '-' or '+', starting with a letter or digit, without '..'"


def name_problem(text: object, max_length: int = MAX_NAME_LENGTH) -> str | None:
    """Why `text` cannot be a folder name under the results folder, or None when it can."""
    if not isinstance(text, str):
        return f"must be text, not {type(text).__name__}"
    if not 1 <= len(text) <= max_length or not NAME_CHARACTERS.fullmatch(text) or ".." in text:
        return f"is not a usable name: it becomes a folder name, so use 1 to {max_length} {NAME_RULE}"
    return None


def safe_name(value: str) -> str:
    """Pydantic check behind SafeName."""
    problem = name_problem(value)
    if problem is not None:
        raise ValueError(problem)
    return value


def number(value: Any) -> Any:
    """Accept ints, floats and numeric text (YAML 1.1 reads `1e-3` as text); never booleans or NaN."""
    if isinstance(value, bool):
        raise ValueError("must be a number, not true/false")
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            raise ValueError(f"must be a number, got {excerpt(value)}") from None
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError("must be a finite number")
    return value


def subset_name(value: str) -> str:
    """A training subset name that `parse_subset` accepts."""
    try:
        parse_subset(value)
    except ConfigError as exc:
        raise ValueError(str(exc).removeprefix(f"data: {value!r} ")) from None
    return value


Int = Annotated[int, Field(strict=True)]
Float = Annotated[float, BeforeValidator(number)]
Subset = Annotated[str, AfterValidator(subset_name)]
SafeName = Annotated[str, Field(strict=True), AfterValidator(safe_name)]  # see NAME_CHARACTERS
Method = Literal[METHODS]
Optimizer = Literal[OPTIMIZERS]
Width = Annotated[Int, Field(ge=1)]  # a hidden layer's width
Activation = Literal[ACTIVATIONS]
Dataset = Literal[DATASETS]
Architecture = Literal[ARCHITECTURES]
Channels = Annotated[list[Width], Field(min_length=2, max_length=2)]  # the CNN's two convolutions

# DBA's settings in a run or a recipe are the engine's own config, validated once (see dba/config.py).
DBASettings = DBAConfig


class Strict(BaseModel):
    """Base for every config model: unknown keys are errors, values are immutable."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class RunConfig(Strict):
    """One run: data subset, model, method (optimizer, DBA settings), schedule and seed."""

    dataset: Dataset = "mnist"
    data: Subset = "10-per-class"
    method: Method = "sgd"
    base: Optimizer = "sgd"  # the optimizer that applies DBA's gradient
    lr: Float = Field(DEFAULT_LR["sgd"], gt=0)  # filled in from DEFAULT_LR of the optimizer
    momentum: Float = Field(0.0, ge=0, lt=1)
    weight_decay: Float = Field(0.0, ge=0)
    architecture: Architecture = "mlp"  # the MLP (uses hidden) or the small CNN (uses channels), see models.py
    hidden: list[Width] = Field(default_factory=lambda: [512], min_length=1)
    channels: Channels = Field(default_factory=lambda: [8, 16])
    activation: Activation = "relu"
    epochs: Int = Field(50, ge=1)
    batch_size: Int = Field(64, ge=1)
    seed: Int = Field(0, ge=0)
    dba: DBAConfig | None = None  # required (defaults filled in) for method dba only
    # Protocol: the defaults are the spec's protocol; other values are diagnostics.
    validation_size: Int = Field(0, ge=0)  # training images outside the subset, for every choice (tuning)
    subset_draw: Literal["stratified", "uniform"] = "stratified"
    resample: Literal["once", "every_epoch"] = "once"  # every_epoch: a fresh subset each epoch

    @model_validator(mode="before")
    @classmethod
    def fill_defaults(cls, values: Any) -> Any:
        """Default lr from the optimizer; default DBA settings for method dba.

        With an unknown method or base there is no default lr, and that is the
        only error to report: the unset lr is dropped rather than passed on as
        None (which would add a spurious "lr: should be a number" error).
        """
        if not isinstance(values, dict):
            return values
        values = dict(values)
        method = values.get("method", "sgd")
        optimizer = values.get("base", "sgd") if method == "dba" else method
        if values.get("lr") is None:
            default = DEFAULT_LR.get(optimizer) if isinstance(optimizer, str) else None
            if default is not None:
                values["lr"] = default
            else:
                values.pop("lr", None)
        if method == "dba" and values.get("dba") is None:
            values["dba"] = {}
        return values

    @model_validator(mode="after")
    def dba_only_for_dba(self) -> RunConfig:
        if self.dba is not None and self.method != "dba":
            raise ValueError(f"dba settings were given but method is {self.method!r}; use method dba or drop them")
        return self

    @property
    def optimizer(self) -> str:
        """The torch optimizer that applies the update."""
        return self.base if self.method == "dba" else self.method

    def to_dict(self) -> dict:
        """Plain JSON-able values, as saved with each run.

        Fields that do not apply (DBA settings of a baseline, the widths of the
        model not used) are left out, and so are protocol and setting fields at
        their defaults, so that result files stay comparable when new options are added.
        """
        values = self.model_dump()
        if self.method != "dba":
            values.pop("base")
            values.pop("dba")
        values.pop("channels" if self.architecture == "mlp" else "hidden")
        for name in SETTING_FIELDS:
            if values[name] == type(self).model_fields[name].default:
                values.pop(name)
        for name in PROTOCOL_FIELDS:
            if values[name] == type(self).model_fields[name].default:
                values.pop(name)
        return values

    def replace(self, **changes) -> RunConfig:
        return make_config(RunConfig, {**self.model_dump(), **changes})


def make_config(model: type[BaseModel], values: dict, source: str | None = None):
    """Validate `values` into `model`, or raise ConfigError naming each bad field."""
    try:
        return model.model_validate(values)
    except ValidationError as exc:
        raise config_error(exc, model, source) from None


def run_config(**values) -> RunConfig:
    """Shorthand for Python users and tests: `run_config(method="adam", epochs=3)`."""
    return make_config(RunConfig, values)


def config_error(exc: ValidationError, model: type[BaseModel], source: str | None = None) -> ConfigError:
    """Every problem on one line, `; `-separated: `[file: ]field.path: what is wrong (got X)`.

    Values are quoted as short excerpts (a recipe may hold a huge string or
    list), and at most MAX_PROBLEMS problems are listed, the rest counted.
    """
    errors = exc.errors(include_url=False)
    lines = []
    for error in errors[:MAX_PROBLEMS]:
        loc = error["loc"]
        key = loc[-2] if len(loc) >= 2 and loc[-1] == "[key]" else None  # a bad key of a dict, e.g. a method name
        if key is not None:
            loc = loc[:-2]
        path = ".".join(readable(part) for part in loc) or "(top level)"
        message = cut(" ".join(error["msg"].removeprefix("Value error, ").split()), 300)
        if error["type"] in ("extra_forbidden", "unexpected_keyword_argument"):  # a model's, a dataclass's
            known = known_fields(model, error["loc"][:-1])
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
