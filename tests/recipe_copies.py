"""A copy of the packaged recipes with one recipe's tuned rows replaced, put in force for one test.

Tests of tables and figures need tuned rows of their own (planted numbers, a
declared order), whatever `tests/paste_chosen.py` has pasted into the packaged
recipe during a regeneration. Not a test (pytest collects no function here).
"""

from __future__ import annotations

import re
import shutil

from dba_cli.recipes.loading import RECIPES_DIR_ENV, recipes_dir

TUNED_ROW = re.compile(r"^  [a-z0-9-]+-tuned: .*\n", re.MULTILINE)


def with_tuned_rows(tmp_path, monkeypatch, recipe: str, rows: str) -> None:
    """The packaged recipes, `recipe`'s tuned rows (pasted ones included) replaced by `rows`, in force."""
    recipes = tmp_path / "recipes"
    shutil.copytree(recipes_dir(), recipes)
    path = recipes / f"{recipe}.yaml"
    text = TUNED_ROW.sub("", path.read_text())
    path.write_text(text.replace("\nmethods:\n", "\nmethods:\n" + rows, 1))
    monkeypatch.setenv(RECIPES_DIR_ENV, str(recipes))
