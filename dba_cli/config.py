"""The validated configuration of one training run.

Every entry point (the CLI's `run`, recipes, Python users) builds a `RunConfig`;
invalid values raise `ConfigError` naming the field, so nothing starts training
on a bad value. The resolved config is saved with every result.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from .data.subsets import parse_subset
from .errors import ConfigError
from .models import ACTIVATIONS

OPTIMIZERS = ("sgd", "adam")
METHODS = OPTIMIZERS  # DBA joins in the engine issue
DEFAULT_LR = {"sgd": 0.1, "adam": 0.001}


@dataclass(frozen=True)
class RunConfig:
    """One run: data subset, model, optimizer, schedule and seed."""

    data: str = "10-per-class"
    method: str = "sgd"
    epochs: int = 50
    batch_size: int = 64
    lr: float | None = None  # None: the optimizer's default (DEFAULT_LR)
    momentum: float = 0.0
    weight_decay: float = 0.0
    hidden: tuple[int, ...] = (512,)
    activation: str = "relu"
    seed: int = 0

    def __post_init__(self) -> None:
        parse_subset(self.data)  # raises ConfigError with the accepted forms
        check_choice("method", self.method, METHODS)
        check_choice("activation", self.activation, tuple(ACTIVATIONS))
        check_int("epochs", self.epochs, minimum=1)
        check_int("batch_size", self.batch_size, minimum=1)
        check_int("seed", self.seed, minimum=0)
        if not self.hidden or any(not isinstance(h, int) or h < 1 for h in self.hidden):
            raise ConfigError(f"hidden: {self.hidden!r} must be one or more positive layer widths, e.g. 512 or 512,256.")
        object.__setattr__(self, "hidden", tuple(self.hidden))
        if self.lr is None:
            object.__setattr__(self, "lr", DEFAULT_LR[self.optimizer])
        check_float("lr", self.lr, minimum=0.0, inclusive=False)
        check_float("momentum", self.momentum, minimum=0.0, maximum=1.0, inclusive=True)
        check_float("weight_decay", self.weight_decay, minimum=0.0, inclusive=True)

    @property
    def optimizer(self) -> str:
        """The torch optimizer that applies the update."""
        return self.method

    def to_dict(self) -> dict:
        """Plain JSON-able values, as saved with each run."""
        values = dataclasses.asdict(self)
        values["hidden"] = list(self.hidden)
        return values

    def replace(self, **changes) -> RunConfig:
        return dataclasses.replace(self, **changes)


def check_choice(name: str, value: str, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise ConfigError(f"{name}: {value!r} is not one of {', '.join(allowed)}.")


def check_int(name: str, value: int, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ConfigError(f"{name}: {value!r} must be an integer >= {minimum}.")


def check_float(
    name: str, value: float, minimum: float, maximum: float | None = None, inclusive: bool = True
) -> None:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and value == value
    if ok:
        ok = value >= minimum if inclusive else value > minimum
        ok = ok and (maximum is None or value <= maximum)
    if not ok:
        bound = f">= {minimum}" if inclusive else f"> {minimum}"
        if maximum is not None:
            bound += f" and <= {maximum}"
        raise ConfigError(f"{name}: {value!r} must be a number {bound}.")
