"""The one way this project writes a markdown table, and the one place mean ± std is formatted.

Every table in results/ (paper tables, ablation, tuning report, protocol
diagnostics, benchmarks) goes through `markdown_table`, so they all escape,
align and check their cells alike. Cells are already-formatted strings: each
caller decides its digits, this module only lays them out.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence

# One character per column: l (left, the markdown default), r (right: numbers), c (centre).
RULES = {"l": "---", "r": "---:", "c": ":---:"}
MISSING = "–"  # an empty cell: no value (en dash, as every table has always shown it)


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[str]], align: str) -> str:
    """A GitHub-flavoured markdown table, one line per row, no trailing newline.

    `align` has one letter per column (l, r or c). A '|' inside a cell is escaped and a
    line break becomes a space, so no cell can split a row. ValueError if a row or
    `align` has the wrong number of columns.
    """
    if len(align) != len(header) or any(letter not in RULES for letter in align):
        raise ValueError(f"align {align!r}: need one of l, r, c per column ({len(header)} columns)")
    for number, row in enumerate(rows, 1):
        if len(row) != len(header):
            raise ValueError(f"row {number} has {len(row)} cells, the header {len(header)}: {list(row)!r}")
    lines = [_line(header), "|" + "|".join(RULES[letter] for letter in align) + "|"]
    lines += [_line(row) for row in rows]
    return "\n".join(lines)


def _line(cells: Sequence[str]) -> str:
    return "| " + " | ".join(_cell(cell) for cell in cells) + " |"


def _cell(text: str) -> str:
    return str(text).replace("\r\n", " ").replace("\n", " ").replace("|", "\\|")


def mean_std(values: Sequence[float], digits: int = 2, empty: str = MISSING) -> str:
    """`mean ± sample std` (n − 1), the mean alone for one value, `empty` for none."""
    values = list(values)
    if not values:
        return empty
    if len(values) == 1:
        return f"{values[0]:.{digits}f}"
    return f"{statistics.fmean(values):.{digits}f} ± {statistics.stdev(values):.{digits}f}"


def number(value: float | None, digits: int = 2, suffix: str = "", signed: bool = False) -> str:
    """A number with `digits` decimals and a suffix (and its sign, for a difference); the dash for None or NaN."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return MISSING
    return f"{value:{'+' if signed else ''}.{digits}f}{suffix}"


def interval(low: float, high: float, digits: int = 2) -> str:
    """A confidence interval as `[-0.52, +0.14]` (signed: these are differences); the dash if undefined."""
    if math.isnan(low) or math.isnan(high):
        return MISSING
    return f"[{low:+.{digits}f}, {high:+.{digits}f}]"
