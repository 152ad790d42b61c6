"""Writing reports: each study's report after its runs, and `dba table`'s regeneration of every report.

Every report is built from result files only (no torch, no data), so any of
them can be rebuilt anywhere from the files alone; `write_all` rebuilds them
all for a results folder: the paper tables, the ablation and protocol reports,
the tuning and time-to-target reports of every recipe found there (a recipe
is found by its name: packaged, or in DBA_RECIPES_DIR), and what it all cost.

The reports are written into the results folder itself, so one that cannot be
written (read-only, a read-only mount, a full disk) is one `ResultsNotWritable`
line naming it, checked before any report is rebuilt (`check_reports_writable`).
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from ..errors import ResultsNotWritable
from ..files import write_problem, write_text_atomic
from ..recipes.loading import list_recipes, load_recipe, recipe_order
from ..recipes.recipe import Recipe
from ..studies import converge, protocol, tune
from ..studies.ablate import GROUP as ABLATION_GROUP
from .ablation_report import write_ablation_table
from .converge_report import report as converge_report
from .cost import write_cost
from .converge_report import report_paths as converge_paths
from .converge_report import tuning_report
from .paper_tables import write_tables
from .protocol_report import recipes_for_table, write_protocol_table
from .tune_report import report_path as tune_path
from .tune_report import tune_report


def write_tune_report(recipe: Recipe, results_dir: Path, command: str, smoke: bool = False, variant: str | None = None) -> Path:
    path = tune_path(results_dir, recipe, variant)
    write_text_atomic(path, tune_report(recipe, results_dir, command, smoke, variant))
    return path


def write_converge_reports(recipe: Recipe, results_dir: Path, command: str, smoke: bool = False) -> tuple[Path, Path]:
    """Both time-to-target reports; a warning for every target no reported run reached."""
    report_path, tuning_path = converge_paths(results_dir, recipe)
    text, unreached = converge_report(recipe, results_dir, command, smoke)
    write_text_atomic(report_path, text)
    write_text_atomic(tuning_path, tuning_report(recipe, results_dir, command, smoke))
    for target in unreached:
        warnings.warn(
            f"{recipe.name}: no reported run reached {target:g}% validation accuracy within "
            f"{converge.budget(recipe, smoke)} epochs; the table says so for every run", stacklevel=2,
        )
    return report_path, tuning_path


def studied_recipes(results_dir: Path, group: str) -> list[Recipe]:
    """The recipes with a folder under results/<group>/ that can be found by name, in the paper's order."""
    root = Path(results_dir) / group
    names = sorted((p.name for p in root.iterdir() if p.is_dir()), key=recipe_order) if root.is_dir() else []
    known = list_recipes()
    found = []
    for name in names:
        if name in known:
            found.append(load_recipe(name))
        else:
            warnings.warn(f"{root / name}: no recipe named {name!r} is known here, so its report was left as it is", stacklevel=2)
    return found


NOT_WRITABLE_FIX = (
    "dba table writes its reports into the results folder. Fix: make it writable (or free some space), "
    "or copy the results to a writable folder and pass --results COPY."
)


def check_reports_writable(results_dir: Path) -> None:
    """Before any report is rebuilt: a file can be created in `results_dir` (an existing folder). Raises ResultsNotWritable."""
    problem = write_problem(results_dir)
    if problem is not None:
        raise ResultsNotWritable(f"results folder {results_dir} is not writable ({problem}); {NOT_WRITABLE_FIX}")


@contextmanager
def reports_written(results_dir: Path) -> Iterator[None]:
    """Around rebuilding the reports: a file that cannot be written after all (the disk filled up meanwhile, a report's
    name taken by a folder) is one line naming it, not a traceback."""
    try:
        yield
    except OSError as exc:
        where = exc.filename or results_dir
        raise ResultsNotWritable(f"could not write the reports: {where}: {exc.strerror or exc}; {NOT_WRITABLE_FIX}") from None


def write_all(results_dir: Path, recipes: list[str] | None = None, allow_mixed: bool = False) -> tuple[list[Path], str]:
    """Rebuild every report of a results folder; the files written, and the paper tables' markdown."""
    results_dir = Path(results_dir)
    if results_dir.is_dir():  # a missing folder is write_tables' to report ("no result files")
        check_reports_writable(results_dir)
    with reports_written(results_dir):
        return rebuild_all(results_dir, recipes, allow_mixed)


def rebuild_all(results_dir: Path, recipes: list[str] | None, allow_mixed: bool) -> tuple[list[Path], str]:
    """`write_all`'s work: every study's report, then the paper tables and the cost."""
    written: list[Path] = []
    for recipe in studied_recipes(results_dir, tune.GROUP):
        if recipes is None or recipe.name in recipes:
            written.append(write_tune_report(recipe, results_dir, f"dba tune {recipe.name}"))
    for recipe in studied_recipes(results_dir, f"{tune.GROUP}-holdout"):  # the sensitivity variant of scarce recipes
        if (recipes is None or recipe.name in recipes) and tune.scarce(recipe):
            written.append(write_tune_report(recipe, results_dir, f"dba tune {recipe.name} --validation holdout", variant="holdout"))
    for recipe in studied_recipes(results_dir, converge.TUNING_GROUP):
        if recipes is None or recipe.name in recipes:
            written += write_converge_reports(recipe, results_dir, f"dba converge {recipe.name}")
    if (results_dir / ABLATION_GROUP).is_dir():
        written.append(write_ablation_table(results_dir)[0])
    if (results_dir / protocol.GROUP).is_dir():
        written.append(write_protocol_table(results_dir, recipes_for_table(results_dir))[0])
    md_path, csv_path, markdown = write_tables(results_dir, recipes, allow_mixed)  # last: it quotes the convergence report
    return [*written, md_path, csv_path, write_cost(results_dir)], markdown
