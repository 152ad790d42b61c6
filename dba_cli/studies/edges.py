"""The edge rule of a tuning search: when a family's best value lies at the end of a numeric line, try one step beyond.

A grid says nothing about the settings outside it: a best learning rate at the
top of `[0.03, 0.1, 0.3]` may only mean the grid stopped too early, and a
method tuned on a grid that cuts it short loses a comparison it could win. The
protocol declaration (dba_cli/protocol.yaml `edge:`) therefore lets every
family, alike, try the next value beyond such an edge, a bounded number of
times; candidates.py `extended` runs the rounds and validates the proposals.

A *line* is the set of values one numeric setting takes while everything else
is held at the best's setting: a setting axis (`lr: [0.03, 0.1, 0.3]`) is one
line; a mapping axis (`optimizer: [{base: sgd, lr: 0.1}, {base: adam, lr:
0.001}]`) has one line per key and per combination of its other keys (the sgd
learning rates, the adam ones). The step is geometric, since the grids that
matter here (learning rates, weight decays) are: the ratio of the edge to its
nearest neighbour. Pure functions of the axes and the best setting, so a report
recomputes every extension from the result files alone.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from ..recipes.sections import SETTING_NAMES


@dataclass(frozen=True)
class Extension:
    """One step beyond an edge: on `axis` (its key `key`), the best's `edge` value gave way to a try of `value`."""

    axis: str
    key: str  # the setting stepped: the axis itself for a setting axis, a key of its mappings for a mapping axis
    edge: float
    value: float
    settings: dict  # the best's full run settings with `key` set to `value`
    line: tuple = ()  # the line's values before the step, ascending (for the report)

    @property
    def text(self) -> str:
        """"lr: best 0.3 at the top of [0.03, 0.1, 0.3]; tried 0.9" (a mapping axis reads "optimizer.lr: ...")."""
        name = self.key if self.key == self.axis else f"{self.axis}.{self.key}"
        end = "top" if self.value > self.edge else "bottom"
        line = ", ".join(number_text(value) for value in self.line)
        return f"{name}: best {number_text(self.edge)} at the {end} of [{line}]; tried {number_text(self.value)}"


def number_text(value: float) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def numeric(value: Any) -> bool:
    """A number a geometric step applies to: int or float, finite, never a boolean (a switch, not a scale)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def best_mapping(values: list, settings: dict) -> dict | None:
    """The first mapping of a mapping axis that `settings` took (every key of it equal), or None."""
    for value in values:
        if isinstance(value, dict) and all(key in settings and settings[key] == v for key, v in value.items()):
            return value
    return None


def lines(axis: str, values: list, best: dict) -> list[tuple[str, list]]:
    """The axis' numeric lines through the best setting: (key, the values of that key on the line)."""
    if axis in SETTING_NAMES:
        return [(axis, list(values))] if axis in best and all(numeric(value) for value in values) else []
    mapping = best_mapping(values, best)
    if mapping is None:
        return []
    found = []
    for key, value in mapping.items():
        if not numeric(value):
            continue
        line = [other[key] for other in values
                if isinstance(other, dict) and set(other) == set(mapping) and numeric(other[key])
                and all(other[j] == mapping[j] for j in mapping if j != key)]
        found.append((key, line))
    return found


def step_beyond(line: list, edge: float) -> float | None:
    """The next value beyond `edge` if it ends `line`: edge * (edge / its nearest neighbour), to 6 significant digits.

    None when the edge is inside the line, the line has fewer than 2 distinct
    values, or the edge or its neighbour is <= 0: a weight decay of 0 at the
    bottom of its line cannot be stepped geometrically (0 times any ratio is 0,
    and a ratio to 0 is undefined), so the rule leaves it be. An integer line
    (a batch size) steps to the nearest integer, and not at all where that
    rounds back onto the edge or to 0.
    """
    distinct = sorted(set(line))
    if len(distinct) < 2 or edge not in (distinct[0], distinct[-1]):
        return None
    neighbour = distinct[1] if edge == distinct[0] else distinct[-2]
    if edge <= 0 or neighbour <= 0:
        return None
    value = float(f"{edge * (edge / neighbour):.6g}")
    if all(isinstance(v, int) for v in distinct):
        value = round(value)
        if value == edge or value <= 0:
            return None
    return value


def edge_extensions(axes: dict[str, list], best: dict, tried: list[dict]) -> list[Extension]:
    """Every step beyond an edge of the best setting's lines, by axis order then key order; none already in `tried`.

    `axes`: the family's axes as the recipe wrote them plus the values earlier
    extensions added (`extend_axes`); `best`: the best setting's full run
    settings (as Search.settings gives them). The caller validates the
    proposals (a momentum must stay below 1) and drops the invalid ones.
    """
    found: list[Extension] = []
    for axis, values in axes.items():
        for key, line in lines(axis, values, best):
            edge = best[key]
            value = step_beyond(line, edge)
            if value is None:
                continue
            settings = {**best, key: value}
            if settings in tried or any(settings == other.settings for other in found):
                continue
            found.append(Extension(axis, key, edge, value, settings, tuple(sorted(set(line)))))
    return found


def extend_axes(axes: dict[str, list], extension: Extension) -> dict[str, list]:
    """The axes with the extension's value on its line, so that a next round sees the longer line and can step again.

    A setting axis gains the value; a mapping axis gains the best's mapping with
    the key set to the value. `axes` itself is left as it was.
    """
    values = axes[extension.axis]
    if extension.axis in SETTING_NAMES:
        added: Any = extension.value
    else:
        mapping = next((m for m in values if isinstance(m, dict) and m.get(extension.key) == extension.edge
                        and all(extension.settings.get(j) == v for j, v in m.items() if j != extension.key)), None)
        if mapping is None:
            raise ValueError(f"{extension.axis}: no mapping of the axis holds the extension's edge ({extension.text})")
        added = {**mapping, extension.key: extension.value}
    return {**axes, extension.axis: [*values, added]}
