"""Training subset names: full, N images per class, or a stratified fraction, and what each means.

A fraction is stratified to *equal* counts per class (1% of 60,000 = 600
images = 60 per class), following the spec's "60/class for 1%". Parsing needs
no torch (configs and `--help` parse names); the draws are data/subsets.py.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ..errors import ConfigError

NUM_CLASSES = 10
TRAIN_SIZE = 60000  # both data sets' training sets


@dataclass(frozen=True)
class SubsetSpec:
    """What to train on. `per_class` is None for the full training set."""

    name: str
    per_class: int | None

    def size(self) -> int | None:
        return None if self.per_class is None else self.per_class * NUM_CLASSES


SUBSET_HELP = "'full', 'N-per-class' (e.g. 10-per-class) or a stratified fraction like '1pct' / '1%' / '0.01'"


def parse_subset(text: str, train_size: int = TRAIN_SIZE) -> SubsetSpec:
    """Parse a subset name; raise ConfigError naming the accepted forms."""
    value = text.strip().lower()
    if value == "full":
        return SubsetSpec("full", None)
    if match := re.fullmatch(r"(\d+)-per-class", value):
        per_class = int(match.group(1))
    else:
        fraction = parse_fraction(value)
        if fraction is None or not 0 < fraction <= 1:
            raise ConfigError(f"data: {text!r} is not a training subset. Use {SUBSET_HELP}.")
        per_class = round(fraction * train_size / NUM_CLASSES)
    if per_class < 1:
        raise ConfigError(f"data: {text!r} selects no images per class. Use {SUBSET_HELP}.")
    if per_class * NUM_CLASSES > train_size:
        raise ConfigError(f"data: {text!r} asks for {per_class * NUM_CLASSES:,} images, more than the {train_size:,} "
                          f"of the training set. Use {SUBSET_HELP}.")
    return SubsetSpec(value, per_class)


def class_counts(per_class: int, imbalance: float = 1.0) -> tuple[int, ...]:
    """Images of each class in a subset of `per_class` per class, long-tailed by the imbalance ratio ρ (1: balanced).

    Class c keeps round(per_class x ρ^(−c/9)) images, at least 1: class 0
    keeps `per_class`, class 9 `per_class / ρ` (the CIFAR-LT convention, with
    n_max the subset's per-class count).
    """
    if imbalance == 1.0:
        return (per_class,) * NUM_CLASSES
    return tuple(max(1, round(per_class * imbalance ** (-c / (NUM_CLASSES - 1)))) for c in range(NUM_CLASSES))


def parse_fraction(value: str) -> float | None:
    """'1pct', '1%' -> 0.01; '0.01' -> 0.01; anything else -> None."""
    if match := re.fullmatch(r"(\d+(?:\.\d+)?)(pct|%)", value):
        return float(match.group(1)) / 100
    try:
        return float(value)
    except ValueError:
        return None
