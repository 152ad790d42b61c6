"""Paper tables, built only from result files, with the paper's claims beside ours.

Every number in the tables is computed here from `results/<recipe>/<method>/seed-*.json`;
the paper's claims come from the recipe (which quotes docs/dba-method.md). Nothing
is typed by hand. Damaged result files are skipped with a warning.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterable
from pathlib import Path

import pandas as pd

from ..errors import ConfigError, UnreadableFile
from ..files import read_bounded, write_text_atomic
from ..recipes.loading import RECIPE_ORDER, list_recipes, load_recipe
from ..recipes.protocol import declaration
from ..recipes.recipe import Recipe
from ..results.format import code_label
from ..results.quantities import reach
from ..results.reading import finished_results
from ..settings.run import describe_model
from .converge_report import primary_test
from .glance import adjust, comparisons_of, glance_section, paired_csv, paired_section
from .labels import labels_line, rarest_section
from .markdown import markdown_table, mean_std, number
from .summaries import MethodSummary, error_reduction, summarise

MAX_REPORT_BYTES = 2**20  # a generated report read back (the convergence report is about 5 KB)

ROLE_LABEL = {
    "baseline": "baseline, untuned",
    "literal": "DBA, literal reading",
    "chosen": "DBA, recipe's hand-chosen variant",
    "tuned-baseline": "baseline, tuned on validation",
    "tuned": "DBA, tuned on validation",
}


def load_results(results_dir: Path) -> pd.DataFrame:
    """One row per finished run; damaged files are skipped with a warning naming them."""
    rows = []
    for path, document in finished_results(results_dir):
        history = document["history"]
        rows.append(
            {
                "recipe": document["recipe"],
                "method_name": document["method_name"],
                "role": document.get("role", "baseline"),
                "method": document["config"]["method"],
                "seed": document["seed"],
                "epochs": len(history),
                "final_accuracy": document["final_test_accuracy"],
                "train_seconds": sum(epoch["train_seconds"] for epoch in history),
                "document": document,
                "device": document.get("device", "?"),
                "code": code_label(document),
                "commit": (document.get("code") or {}).get("commit"),
                "diverged_at_epoch": document.get("diverged_at_epoch"),
                "path": str(path),
            }
        )
    return pd.DataFrame(rows)


def baseline_of(summaries: list[MethodSummary], method: str, tuned: bool = False) -> MethodSummary | None:
    """The recipe's SGD or Adam baseline row: the tuned one for tuned DBA, so that like is compared with like.

    A tuned baseline is found by its family's name (`adam-tuned` may have chosen AdamW), an untuned one by its optimizer.
    """
    for summary in summaries:
        if tuned and summary.role == "tuned-baseline" and summary.method_name == f"{method}-tuned":
            return summary
        if not tuned and summary.role == "baseline" and summary.method == method:
            return summary
    return None


def accuracy_cell(summary: MethodSummary) -> str:
    return mean_std(summary.seeds) + (f" ({summary.diverged}/{summary.n} diverged)" if summary.diverged else "")


def scarce_table(recipe: Recipe | None, summaries: list[MethodSummary]) -> tuple[str, list[dict]]:
    """Markdown and CSV rows for a data-scarce setting."""
    claim = recipe.claim if recipe else None
    lines, rows = [], []
    for summary in summaries:
        is_dba = summary.method == "dba"
        paper = None
        if claim is not None:
            paper = claim.dba_accuracy if is_dba else claim.implied_baseline_accuracy
        tuned = summary.role == "tuned"
        vs_sgd = error_reduction(baseline_of(summaries, "sgd", tuned), summary) if is_dba else None
        vs_adam = error_reduction(baseline_of(summaries, "adam", tuned), summary) if is_dba else None
        claimed_reduction = f" (paper {claim.error_reduction:.2f})" if is_dba and claim and claim.error_reduction else ""
        paper_cell = number(paper) + ("" if is_dba or paper is None else " (implied)")
        lines.append([
            summary.method_name, ROLE_LABEL.get(summary.role, summary.role), str(summary.n), accuracy_cell(summary),
            ", ".join(f"{a:.2f}" for a in summary.seeds), f"{summary.error:.2f}",
            number(vs_sgd, suffix="%") + (claimed_reduction if vs_sgd is not None else ""),
            number(vs_adam, suffix="%") + (claimed_reduction if vs_adam is not None else ""),
            paper_cell, number(None if paper is None else summary.mean - paper, suffix=" pts", signed=True),
        ])
        rows.append(
            {
                **summary_row(summary),
                "error_reduction_vs_sgd": vs_sgd,
                "error_reduction_vs_adam": vs_adam,
                "paper_accuracy": paper,
                "paper_error_reduction": claim.error_reduction if is_dba and claim else None,
                "ours_minus_paper": None if paper is None else summary.mean - paper,
            }
        )
    header = [
        "method", "what it is", "n", "test accuracy % (mean ± std)", "per seed", "test error %",
        "error reduction vs SGD", "vs Adam", "paper's accuracy %", "ours − paper",
    ]
    return markdown_table(header, lines, "llrrlrrrrr"), rows


def summary_row(summary: MethodSummary) -> dict:
    return {
        "recipe": summary.recipe,
        "method_name": summary.method_name,
        "role": summary.role,
        "n": summary.n,
        "accuracy_mean": summary.mean,
        "accuracy_std": summary.std,
        "accuracy_per_seed": " ".join(f"{a:.2f}" for a in summary.seeds),
        "train_seconds_mean": summary.train_seconds,
        "diverged": summary.diverged,
    }


def time_to_target(frame: pd.DataFrame, target: float) -> tuple[float | None, float | None, int]:
    """Mean epochs and training seconds to first reach `target` test accuracy, over the seeds that did, and how many did.

    Only evaluated epochs have a test accuracy (the recipe's `evaluation:`
    schedule; mnist-full evaluates every epoch), so the epoch found is the first
    *evaluated* one at or above the target (results/quantities.py).
    """
    reaches = [found for document in frame["document"] if (found := reach(document, target, "test_accuracy")) is not None]
    if not reaches:
        return None, None, 0
    return (sum(r.epoch for r in reaches) / len(reaches), sum(r.seconds for r in reaches) / len(reaches), len(reaches))


def convergence_table(recipe: Recipe | None, frame: pd.DataFrame, summaries: list[MethodSummary]) -> tuple[str, list[dict]]:
    """Markdown and CSV rows for full MNIST: final accuracy and time to each target accuracy."""
    targets = recipe.targets if recipe and recipe.targets else [97.0, 98.0]
    header = ["method", "what it is", "n", "final test accuracy %", "train s / epoch"]
    for target in targets:
        header += [f"epochs to {target:g}%", f"train s to {target:g}%"]
    lines, rows = [], []
    for summary in summaries:
        group = frame[(frame["recipe"] == summary.recipe) & (frame["method_name"] == summary.method_name)]
        per_epoch = summary.train_seconds / max(1, int(group["epochs"].mean()))
        line = [
            summary.method_name, ROLE_LABEL.get(summary.role, summary.role), str(summary.n), accuracy_cell(summary),
            f"{per_epoch:.2f}",
        ]
        row = {**summary_row(summary), "train_seconds_per_epoch": per_epoch}
        for target in targets:
            epochs, seconds, reached = time_to_target(group, target)
            note = "" if reached == summary.n else f" ({reached}/{summary.n} reached)"
            line += [number(epochs, 1) + note, number(seconds, 1) + note] if reached else ["not reached", "not reached"]
            row[f"epochs_to_{target:g}"] = epochs
            row[f"seconds_to_{target:g}"] = seconds
            row[f"reached_{target:g}"] = f"{reached}/{summary.n}"
        lines.append(line)
        rows.append(row)
    return markdown_table(header, lines, "llrrr" + "rr" * len(targets)), rows


def verdict(recipe: Recipe | None, summaries: list[MethodSummary]) -> str:
    """One plain sentence per DBA row comparing ours with the paper's claim."""
    if recipe is None or recipe.claim.dba_accuracy is None:
        return ""
    sentences = []
    for summary in summaries:
        if summary.method != "dba":
            continue
        gap = summary.mean - recipe.claim.dba_accuracy
        status = "matches or beats" if gap >= -0.5 else "does not reach"
        sentences.append(
            f"- **{summary.method_name}** ({ROLE_LABEL.get(summary.role, summary.role)}): {summary.mean:.2f}% "
            f"{status} the paper's {recipe.claim.dba_accuracy:.2f}% ({gap:+.2f} points, n = {summary.n})."
        )
    return "\n".join(sentences)


def packaged_recipe(name: str) -> Recipe | None:
    """The recipe of that name in recipes/ (or DBA_RECIPES_DIR), else None: results of other recipes are shown as found."""
    return load_recipe(name) if name in list_recipes() else None


def table_order(recipe: Recipe | None, method_names: Iterable[str]) -> list[str]:
    """The recipe's own method order (baselines first), names it does not know after, as given.

    Tables and figures both use it, so a figure's legend reads in the table's order.
    """
    names = list(method_names)
    if recipe is None:
        return names
    position = {method: index for index, method in enumerate(recipe.methods)}
    return sorted(names, key=lambda name: position.get(name, len(position)))


def warn_unfinished(recipe: Recipe | None, finished: Iterable[tuple[str, int, int]], results_dir: Path) -> None:
    """Warn, per method of a packaged recipe, when fewer seeds finished than the recipe runs.

    `finished` holds (method_name, seed, epochs trained) per finished run. Runs that all trained
    the recipe's smoke epochs (`dba reproduce --smoke`) are held to the smoke seed count instead.
    Each method is held to its own seeds (`Recipe.seed_range`: a tuned method's are the declaration's reported ones).
    Tables and figures call it, so neither leaves a method out without saying so.
    """
    if recipe is None:
        return
    finished = list(finished)
    smoke = recipe.smoke.epochs != recipe.training.epochs and all(epochs == recipe.smoke.epochs for *_, epochs in finished)
    command = f"dba reproduce {recipe.name}" + (" --smoke" if smoke else "")
    if Path(results_dir) != Path("results/smoke" if smoke else "results"):
        command += f" --results {results_dir}"
    for method in recipe.methods:
        seeds = set(recipe.seed_range(method, smoke))
        expected = len(seeds)
        found = len({seed for name, seed, _ in finished if name == method and seed in seeds})
        if found < expected:
            shown = "left out" if found == 0 else f"shown with n = {found}"
            warnings.warn(
                f"{recipe.name}: method {method!r} has {found} of {expected} seeds finished in {results_dir} "
                f"({shown}). Fix: `{command}` runs the missing ones.",
                stacklevel=3,
            )


def code_versions_line(frame: pd.DataFrame, allow_mixed: bool) -> str:
    """Which code versions the tables aggregate; a ConfigError if one row mixes versions (unless allowed).

    A row's seeds are only comparable when one version of the training code made
    them all. Versions are named by `results.format.code_label`: the hash of the
    training sources, or "edited" (a file changed by hand).
    """
    mixed = []
    for (recipe, method), group in frame.groupby(["recipe", "method_name"], sort=False):
        labels = group["code"].value_counts()
        if len(labels) > 1:
            mixed.append(f"{recipe} {method} ({', '.join(f'{label}: {count}' for label, count in labels.items())})")
    if mixed and not allow_mixed:
        raise ConfigError(
            f"{len(mixed)} table row(s) mix runs of different code versions: " + "; ".join(mixed[:5])
            + ". Fix: rerun them with the current code (`dba reproduce RECIPE` reruns stale runs), "
            "or pass --mixed-versions to tabulate them anyway (the tables then say so)."
        )
    parts = []
    for label, group in frame.groupby("code", sort=False):
        commits = sorted({str(commit)[:10] for commit in group["commit"].dropna()})
        where = f"commit {', '.join(commits)}" if commits else "no commit recorded"
        parts.append(f"`{label}` ({where}): {len(group)} run(s)")
    line = "Code versions (hash of the training sources, see `dba_cli/training/code_version.py`): " + "; ".join(parts) + "."
    if mixed:
        line += " **Rows mixing versions (--mixed-versions):** " + "; ".join(mixed) + "."
    return line


def convergence_section(results_dir: Path, recipe: str, claim: str | None = None) -> list[str]:
    """`dba converge`'s verdict for this recipe (its report, headings one level down), or a pointer to the command.

    The table above compares untuned methods at their default learning rates;
    the claim is judged with every method tuned for time to target.
    """
    report = results_dir / "convergence" / f"{recipe}.md"
    try:
        text = read_bounded(report, MAX_REPORT_BYTES, inside=results_dir).decode("utf-8", errors="replace")
    except FileNotFoundError:
        return ["", f"Convergence with every method tuned for time to target: not run yet (`dba converge {recipe}`)."]
    except UnreadableFile as exc:
        warnings.warn(f"skipped: {exc}", stacklevel=2)
        return ["", f"Convergence with every method tuned for time to target: its report is unreadable ({exc.reason}); "
                    f"`dba converge {recipe}` writes it again."]
    body = text.split("\n", 1)[1] if "\n" in text else ""  # without its own title
    body = "\n".join("#" + line if line.startswith("## ") else line for line in body.splitlines())
    said = [f"The paper's claim, beside ours below: {claim}.", ""] if claim else []
    return ["", "### Time to target, every method tuned (`dba converge`)", "", *said, body.strip()]


def time_to_target_tests(results_dir: Path, names: list[str]) -> list:
    """The declaration's primary time-to-target hypotheses among these recipes that have reported convergence runs."""
    found = []
    for name in names:
        recipe = packaged_recipe(name)
        if recipe is not None and recipe.convergence is not None and declaration().primary(name, "steps_to_target"):
            test = primary_test(recipe, results_dir)
            if test is not None:
                found.append(test)
    return found


def time_verdict(test, p_holm: float) -> str:
    """"DBA faster" / "DBA slower" where the Holm-adjusted sign test rejects, else "no difference shown"."""
    if not math.isnan(p_holm) and p_holm < declaration().tests.alpha and test.wins_a != test.wins_b:
        return "DBA faster" if test.wins_a > test.wins_b else "DBA slower"
    return "no difference shown"


def build_tables(
    results_dir: Path, recipes: list[str] | None = None, allow_mixed: bool = False
) -> tuple[str, pd.DataFrame]:
    """The markdown document and a CSV-ready frame for every recipe with results."""
    frame = load_results(results_dir)
    if frame.empty:
        raise ConfigError(f"no result files under {results_dir}. Fix: run `dba reproduce RECIPE` first.")
    present = list(dict.fromkeys(frame["recipe"]))
    ordered = [name for name in RECIPE_ORDER if name in present] + [n for n in present if n not in RECIPE_ORDER]
    if recipes:
        ordered = [name for name in ordered if name in recipes]
    versions = code_versions_line(frame[frame["recipe"].isin(ordered)], allow_mixed)
    sections = [
        "# Paper tables",
        "",
        "Generated by `dba table` from the result files under "
        f"`{results_dir}`; do not edit by hand. Accuracy is the final-epoch test accuracy "
        "(never a best epoch), mean ± sample std over seeds. The paper's numbers are from its abstract "
        "(see docs/dba-method.md); \"implied\" baseline accuracies are derived from its two claimed numbers. "
        "Error reductions compare like with like: DBA tuned on the validation split against the tuned baselines "
        "(`dba tune`, results/tune/), the other DBA rows against the untuned baselines. "
        "For a data-scarce setting the headline is its last part: tuned DBA minus each tuned baseline, paired by "
        "seed, with 95% intervals and p-values; the comparator is the tuned baseline family that ranks best on the "
        "tuning runs (never a reported seed, never the test set). Verdicts count only runs made under the protocol "
        "declaration in force (see At a glance). Recipes beyond the paper (Fashion-MNIST, the CNN) have no claim: "
        "their \"paper\" columns show –.",
        "",
        versions,
    ]
    glance = []  # every tuned DBA - tuned baseline comparison of the table: one family of tests (Holm)
    parts: list[tuple[list[str], list[dict], list]] = []  # each recipe: its lines (a placeholder for its headline), CSV rows
    for name in ordered:
        recipe = packaged_recipe(name)
        subset = frame[frame["recipe"] == name]
        summaries = summarise(subset)
        order = table_order(recipe, [summary.method_name for summary in summaries])
        summaries.sort(key=lambda summary: order.index(summary.method_name))
        warn_unfinished(recipe, zip(subset["method_name"], subset["seed"], subset["epochs"]), results_dir)
        devices = ", ".join(sorted(set(subset["device"])))
        lines: list = ["", f"## {name}", "", (recipe.description if recipe else ""), ""]
        found: list = []
        if recipe and recipe.defaults.data == "full":
            table, rows = convergence_table(recipe, subset, summaries)
            lines += [table, "", f"Trained on: {devices}. The paper claims faster convergence with DBA, without a figure."]
            if any(epoch["test_accuracy"] is None for document in subset["document"] for epoch in document["history"]):
                lines[-1] += (
                    " Epochs and seconds to a target count to the first *evaluated* epoch at or above it "
                    "(the recipe's `evaluation:` schedule skips some epochs), so they are upper bounds."
                )
            lines += convergence_section(results_dir, name, recipe.claim.convergence if recipe else None)
        else:
            table, rows = scarce_table(recipe, summaries)
            lines += [table, "", *labels_line(summaries), *rarest_section(summaries), ""]
            if recipe and recipe.claim.dba_accuracy is not None:
                lines.append(
                    f"Paper: DBA {recipe.claim.dba_accuracy:.2f}%, {recipe.claim.error_reduction:.2f}% less error "
                    f"than SGD/Adam (implied baseline ≈ {recipe.claim.implied_baseline_accuracy:.2f}%). Trained on: {devices}."
                )
                lines += ["", verdict(recipe, summaries)]
            found = comparisons_of(name, recipe, summaries, results_dir)
            glance += found
            if found:
                lines += ["", None]  # the headline, once every p-value of the table is known
        parts.append((lines, rows, found))
    time_tests = time_to_target_tests(results_dir, ordered)
    adjusted = adjust(glance, [test.p_value for _, test in time_tests])  # Holm within primary, and within secondary
    time_lines = [f"- {text}; Holm-adjusted within the primary family p {number(p, 3)}: "
                  f"{time_verdict(test, p)}." for (text, test), p in zip(time_tests, adjusted)]
    csv_rows: list[dict] = []
    for lines, rows, found in parts:
        sections += [paired_section(found[0].recipe, found) if line is None else line for line in lines]
        extra = {}
        for comparison in found:
            if comparison.comparator:
                extra[comparison.dba.method_name] = paired_csv(comparison)
        csv_rows += [{**row, **extra.get(row["method_name"], {})} for row in rows]
    sections[5:5] = glance_section(glance, time_lines)  # after the introduction and the code versions
    table = pd.DataFrame(csv_rows)
    if "paired_n" in table:
        table["paired_n"] = table["paired_n"].astype("Int64")  # a count, blank where there are no pairs
    return "\n".join(sections).rstrip() + "\n", table


def write_tables(
    results_dir: Path, recipes: list[str] | None = None, allow_mixed: bool = False
) -> tuple[Path, Path, str]:
    """Write results/paper-tables.md and .csv atomically; return their paths and the markdown."""
    markdown, frame = build_tables(results_dir, recipes, allow_mixed)
    md_path, csv_path = results_dir / "paper-tables.md", results_dir / "paper-tables.csv"
    write_text_atomic(md_path, markdown)
    write_text_atomic(csv_path, frame.to_csv(index=False, float_format="%.4f"))
    return md_path, csv_path, markdown
