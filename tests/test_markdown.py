"""The one table helper and the one mean ± std formatter, against strings written out by hand."""

import math

import pytest

from dba_cli.reports.markdown import interval, markdown_table, mean_std, number


def test_table_lines_rule_and_alignment():
    table = markdown_table(["method", "n", "accuracy %", "note"], [["sgd", "5", "88.34", "–"], ["dba", "10", "1.00", "x"]], "lrrc")
    assert table == (
        "| method | n | accuracy % | note |\n"
        "|---|---:|---:|:---:|\n"
        "| sgd | 5 | 88.34 | – |\n"
        "| dba | 10 | 1.00 | x |"
    )


def test_a_table_without_rows_is_its_header():
    assert markdown_table(["a", "b"], [], "lr") == "| a | b |\n|---|---:|"


def test_a_cell_cannot_split_its_row():
    table = markdown_table(["a"], [["x | y\nz"]], "l")
    assert table.splitlines()[2] == "| x \\| y z |"


@pytest.mark.parametrize("header, rows, align", [
    (["a", "b"], [["1"]], "lr"),  # a row too short
    (["a", "b"], [["1", "2", "3"]], "lr"),  # a row too long
    (["a", "b"], [], "l"),  # align too short
    (["a"], [], "x"),  # unknown alignment
])
def test_wrong_shapes_are_refused(header, rows, align):
    with pytest.raises(ValueError):
        markdown_table(header, rows, align)


def test_mean_std_by_hand():
    # 1, 2, 4: mean 7/3 = 2.333; squared deviations 16/9 + 1/9 + 25/9 = 42/9, / 2 -> 7/3, sqrt -> 1.5275
    assert mean_std([1.0, 2.0, 4.0]) == "2.33 ± 1.53"
    assert mean_std([1.0, 2.0, 4.0], digits=1) == "2.3 ± 1.5"
    assert mean_std([90.0, 92.0]) == "91.00 ± 1.41"  # sqrt(2)
    assert mean_std([7.0]) == "7.00"
    assert mean_std([]) == "–" and mean_std([], empty="not run") == "not run"


def test_number_and_interval():
    assert number(4.5276, suffix="%") == "4.53%" and number(2.5, 1) == "2.5"
    assert number(None) == "–" and number(math.nan) == "–"
    assert interval(-0.5229, 0.4749) == "[-0.52, +0.47]"
    assert interval(math.nan, math.nan) == "–"
