"""`dba verify RECIPE`: retrain some of a recipe's committed runs from their own configs and compare the files.

A newcomer's first question is whether the committed numbers come out of this
code on their machine. Each committed result file holds its full resolved
config, so the run it records can be trained again exactly; this command does
that for a few runs (by default one per method, so every method is covered)
or all of them, into a scratch folder (a temporary one unless --scratch is
given; never the committed folder), through the same executor as `dba
reproduce` (progress bars, --jobs, --device), then compares each pair with
reports/verification.py. Exit 0 when every run is within the stated
tolerance, 1 when one is not, 2 for a user error.
"""

from __future__ import annotations

import shutil
import tempfile
from collections import Counter
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table, box

from ..errors import ConfigError
from ..reports.verification import TOLERANCE, RunComparison, Tolerance, compare, selected, summarize
from ..results.format import EDITED
from .console import user_errors, warnings_shown
from .display import err
from .grid import executing
from .options import DataDirOption, DeviceOption, GridOptions, JobsOption, RecipeArgument, MAX_THREADS, split_names, usable_path

CommittedOption = Annotated[
    Optional[Path],
    typer.Option("--results", show_default=False, callback=usable_path,
                 help="The committed results folder, read only (RECIPE/METHOD/seed-N.json under it). Default: results/."),
]
ScratchOption = Annotated[
    Optional[Path],
    typer.Option("--scratch", show_default=False, callback=usable_path,
                 help="Where the retrained runs go, kept afterwards (a rerun reuses the runs it finished). Default: a "
                 "temporary folder, removed at the end. Never the committed folder."),
]


def verify(
    recipe: RecipeArgument,
    runs: Annotated[
        Optional[int], typer.Option("--runs", min=1, show_default=False,
                                    help="How many committed runs to retrain, spread over the methods (each method's "
                                    "lowest seed first). Default: one per method.")
    ] = None,
    all_runs: Annotated[bool, typer.Option("--all", help="Retrain every committed run of the recipe.")] = False,
    methods: Annotated[
        Optional[str], typer.Option(help="Comma-separated method names to verify. Default: every method with "
                                    "committed runs.", show_default=False)
    ] = None,
    results: CommittedOption = None,
    scratch: ScratchOption = None,
    tolerance: Annotated[
        float, typer.Option("--tolerance", min=0, help="Largest |final test accuracy difference| that passes, points.")
    ] = TOLERANCE.accuracy_points,
    loss_tolerance: Annotated[
        Optional[float], typer.Option("--loss-tolerance", min=0, show_default=False,
                                      help="Judge the loss history too: the largest relative difference of the "
                                      "per-epoch training loss that passes, |a - b| / |a|. Default: reported, not judged "
                                      "(float32 rounding grows over training: 3.7% late in one of mnist-10-per-class's "
                                      "runs retrained elsewhere, whose final accuracy moved 0.01 points).")
    ] = None,
    kept_tolerance: Annotated[
        float, typer.Option("--kept-tolerance", min=0, help="Largest mean |difference| of DBA's per-epoch mean kept "
                            "subset size that passes, samples.")
    ] = TOLERANCE.kept_samples,
    device: DeviceOption = "auto",
    threads: Annotated[
        Optional[int], typer.Option("--threads", min=1, max=MAX_THREADS, show_default=False,
                                    help="torch threads per run. Default: the thread count the committed runs record "
                                    "(results are identical only at the same count).")
    ] = None,
    jobs: JobsOption = None,
    data_dir: DataDirOption = None,
) -> None:
    """Retrain committed runs of a recipe from their saved configs and compare: final accuracy, loss history, DBA's kept sizes.

    By default one run per method (its lowest seed), into a temporary folder; --runs N or --all for more, --scratch DIR to keep them. Exit 0 when every retrained run is within tolerance, 1 when one is not. Judged by default: the final test accuracy (within 0.05 points) and DBA's kept sizes (within 1 sample on average); the training-loss history's largest relative difference is reported, and judged with --loss-tolerance. Retraining all 50 runs of mnist-10-per-class on another machine moved final accuracies by at most 0.01 points. Committed runs made by other training code than this checkout's (or edited by hand) are named: the comparison is then across code versions.
    """

    from ..files import resolve_inside
    from ..recipes.loading import load_recipe
    from ..recipes.planned import PlannedRun
    from ..results.reading import read_result
    from ..settings.run import RunConfig
    from ..settings.validation import make_config

    limits = Tolerance(tolerance, loss_tolerance, kept_tolerance)
    with user_errors():
        if all_runs and runs is not None:
            raise ConfigError("--runs and --all: give one of them (--all retrains every committed run).")
        loaded = load_recipe(recipe)
        committed_dir = results or Path("results")
        documents = committed_runs(committed_dir, loaded.name)
        documents = only_methods(documents, split_names(methods), loaded.name, committed_dir)
        method_count = len({document["method_name"] for document in documents.values()})
        keys = selected(documents, None if all_runs else runs or method_count, list(loaded.methods))
        planned = {
            key: PlannedRun(loaded.name, documents[key]["method_name"], str(documents[key].get("role") or ""),
                            make_config(RunConfig, documents[key]["config"], source=str(committed_dir / key)),
                            evaluation=loaded.evaluation)
            for key in keys
        }
        thread_count = threads or committed_threads([documents[key] for key in keys])
        scratch_dir, temporary = scratch_folder(scratch, committed_dir)
        err.print(f"verify {loaded.name}: retraining {len(keys)} of its {len(documents)} committed run(s) "
                  f"({describe_selection(all_runs, runs)}) into {scratch_dir}", highlight=False)
        options = GridOptions(results=scratch_dir, device=device, threads=thread_count, jobs=jobs, data_dir=data_dir)
        try:
            with executing(options, {run.config.dataset for run in planned.values()}, "verification") as executor:
                executor.execute(list(planned.values()))
            retrained = {key: read_result(resolve_inside(scratch_dir, run.key), inside=scratch_dir)
                         for key, run in planned.items()}
        except typer.Exit:
            if temporary:
                err.print(f"(the temporary folder {scratch_dir} is removed; --scratch DIR keeps finished runs for a rerun)")
            raise
        finally:
            if temporary:
                shutil.rmtree(scratch_dir, ignore_errors=True)
        missing = [key for key in keys if retrained[key] is None]
        if missing:
            raise ConfigError(f"{', '.join(missing[:3])} not retrained: another dba process is training it in {scratch_dir}. "
                              "Fix: rerun when it ends, or use another --scratch folder.")
        comparisons = [compare(key, documents[key], retrained[key]) for key in keys]
        show_provenance(comparisons, [documents[key] for key in keys], list(retrained.values()))
        passed = show(comparisons, limits, loaded.name, len(documents))
    raise typer.Exit(code=0 if passed else 1)


def committed_runs(committed_dir: Path, name: str) -> dict[str, dict]:
    """RECIPE/METHOD/seed-N.json -> its document, for every finished committed run of the recipe (damaged ones warned of)."""
    from ..results.reading import finished_results

    folder = committed_dir / name
    if not folder.is_dir():
        raise ConfigError(
            f"no committed results for recipe {name}: {folder}/ does not exist. Fix: --results FOLDER (the folder that "
            f"holds {name}/METHOD/seed-N.json), or make them first with `dba reproduce {name}`."
        )
    with warnings_shown():
        documents = {path.relative_to(committed_dir).as_posix(): document
                     for path, document in finished_results(committed_dir, f"{name}/*/seed-*.json")}
    if not documents:
        raise ConfigError(f"no finished result files in {folder}/ (METHOD/seed-N.json). Fix: `dba reproduce {name}` "
                          "makes them, or --results names the folder that holds them.")
    return documents


def only_methods(documents: dict[str, dict], names: list[str] | None, recipe: str, committed_dir: Path) -> dict[str, dict]:
    """The documents of the methods named by --methods (all without it); an unknown name is a ConfigError."""
    if names is None:
        return documents
    present = sorted({document["method_name"] for document in documents.values()})
    unknown = [name for name in names if name not in present]
    if unknown:
        raise ConfigError(f"--methods: {', '.join(unknown)} has no committed runs of {recipe} in {committed_dir}/; "
                          f"use some of: {', '.join(present)}.")
    return {key: document for key, document in documents.items() if document["method_name"] in names}


def committed_threads(documents: list[dict]) -> int:
    """The thread count most of the selected committed runs record (1 where none does)."""
    counts = Counter(document["threads"] for document in documents if isinstance(document.get("threads"), int))
    return counts.most_common(1)[0][0] if counts else 1


def scratch_folder(scratch: Path | None, committed_dir: Path) -> tuple[Path, bool]:
    """--scratch (refused inside the committed folder), or a new temporary folder; and whether it is temporary."""
    if scratch is None:
        return Path(tempfile.mkdtemp(prefix="dba-verify-")), True
    inside, target = committed_dir.resolve(), scratch.resolve()
    if target == inside or inside in target.parents:
        raise ConfigError(f"--scratch {scratch} is inside the committed results folder {committed_dir}/, which verify "
                          "never writes to. Fix: name a folder outside it, or leave --scratch out (a temporary folder).")
    return scratch, False


def describe_selection(all_runs: bool, runs: int | None) -> str:
    if all_runs:
        return "--all"
    return f"--runs {runs}, spread over the methods" if runs else "one per method; --runs N or --all for more"


def show_provenance(comparisons: list[RunComparison], committed: list[dict], retrained: list[dict]) -> None:
    """Where the two sides come from: code version (another one, or a hand edit, is named) and platform."""
    current = ", ".join(sorted({c.retrained_code for c in comparisons}))
    for code, count in sorted(Counter(c.committed_code for c in comparisons if not c.same_code).items()):
        made = "were edited by hand (their digest does not match)" if code == EDITED else f"were made by code {code}"
        err.print(f"[yellow]note:[/] {count} committed run(s) {escape(made)}; this checkout is code {current}: "
                  "the comparison is across code versions.", highlight=False)
    platforms = lambda documents: ", ".join(sorted({str(d.get("versions", {}).get("platform")) for d in documents}))  # noqa: E731
    err.print(f"committed on {escape(platforms(committed))}; retrained on {escape(platforms(retrained))} "
              f"(code {current})", highlight=False)


def number(value: float | None, text: str) -> str:
    return "-" if value is None else format(value, text)


def show(comparisons: list[RunComparison], limits: Tolerance, recipe: str, committed: int) -> bool:
    """The table (a row per run), what lies outside the tolerance, and the summary line; whether every run passed."""
    table = Table(box=box.SIMPLE, padding=(0, 1), title=f"dba verify {recipe}: committed against retrained (accuracy %)",
                  title_justify="left", caption_justify="left",
                  caption="diff: final test accuracy, retrained minus committed (points); loss rel: largest relative "
                  "difference of the training loss at any epoch; eval diff: largest test accuracy difference at the "
                  "epochs both evaluated (points); kept diff: mean difference of DBA's kept size (samples)")
    for heading in ("run", "committed", "retrained", "diff", "loss rel", "eval diff", "kept diff", "verdict"):
        table.add_column(heading, justify="left" if heading in ("run", "verdict") else "right", no_wrap=True)
    for c in comparisons:
        table.add_row(c.key.split("/", 1)[1].removesuffix(".json"), f"{c.committed_accuracy:.2f}",
                      f"{c.retrained_accuracy:.2f}", f"{c.accuracy_difference:+.2f}", number(c.loss_relative, ".1e"),
                      number(c.evaluated_accuracy, ".2f"), number(c.kept_difference, ".2f"),
                      "ok" if c.within(limits) else "OUTSIDE")
    out = Console(width=max(Console().width, 100), highlight=False)
    out.print(table)
    for c in comparisons:
        if not c.within(limits):
            out.print(f"outside: {escape(c.key)}: {escape('; '.join(c.failures(limits)))}", soft_wrap=True)
    s = summarize(comparisons, limits)
    verdict = "PASS" if s.passed else "FAIL"
    out.print(
        f"{verdict}: {s.within} of {s.runs} retrained run(s) of {recipe} (of {committed} committed) within tolerance "
        f"({limits.text()}). Largest differences: final accuracy {s.largest_accuracy:.2f} points, loss history "
        f"{number(s.largest_loss, '.1e')} relative, "
        + ("no DBA run" if s.largest_kept is None else f"kept sizes {s.largest_kept:.2f} samples")
        + (f"; {s.other_code} committed by other code (or edited)" if s.other_code else "") + ".",
        soft_wrap=True,
    )
    return s.passed
