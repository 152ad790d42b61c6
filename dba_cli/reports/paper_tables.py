"""Paper tables, built only from result files, with the paper's claims beside ours.

Every number in the tables is computed here from `results/<recipe>/<method>/seed-*.json`;
the paper's claims come from the recipe (which quotes docs/dba-method.md). Nothing
is typed by hand. Damaged result files are skipped with a warning.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from ..errors import ConfigError, UnreadableFile
from ..files import read_bounded, write_text_atomic
from ..recipes.loading import RECIPE_ORDER, list_recipes, load_recipe
from ..recipes.recipe import Recipe
from ..results.format import code_label
from ..results.quantities import reach
from ..results.reading import finished_results
from ..settings.run import describe_model
from .markdown import interval, markdown_table, mean_std, number
from .stats import BOOTSTRAP_SEED, RESAMPLES, PairedDifference, pair_by_seed, paired_difference, ruled_out

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


@dataclass
class MethodSummary:
    """Aggregates over the seeds of one method of one recipe."""

    recipe: str
    method_name: str
    role: str
    method: str
    n: int
    mean: float
    std: float  # sample std (n-1); NaN for one seed
    seeds: list[float]  # final accuracy per seed, in seed order
    train_seconds: float
    diverged: int = 0  # seeds whose loss became NaN/inf (their accuracy is the one at divergence)
    seed_numbers: list[int] = field(default_factory=list)  # which seed each accuracy is from

    @property
    def error(self) -> float:
        return 100.0 - self.mean

    @property
    def by_seed(self) -> dict[int, float]:
        return dict(zip(self.seed_numbers, self.seeds))


def summarise(frame: pd.DataFrame) -> list[MethodSummary]:
    summaries = []
    for (recipe, name), group in frame.groupby(["recipe", "method_name"], sort=False):
        ordered = group.sort_values("seed")
        accuracies = ordered["final_accuracy"].tolist()
        summaries.append(
            MethodSummary(
                recipe=recipe,
                method_name=name,
                role=group["role"].iloc[0],
                method=group["method"].iloc[0],
                n=len(accuracies),
                mean=float(pd.Series(accuracies).mean()),
                std=float(pd.Series(accuracies).std(ddof=1)) if len(accuracies) > 1 else math.nan,
                seeds=accuracies,
                train_seconds=float(group["train_seconds"].mean()),
                diverged=int(group["diverged_at_epoch"].notna().sum()),
                seed_numbers=[int(seed) for seed in ordered["seed"]],
            )
        )
    return summaries


def error_reduction(baseline: MethodSummary | None, dba: MethodSummary) -> float | None:
    """(err_baseline - err_dba) / err_baseline, in %, from mean errors."""
    if baseline is None or baseline.error <= 0:
        return None
    return 100.0 * (baseline.error - dba.error) / baseline.error


def baseline_of(summaries: list[MethodSummary], method: str, tuned: bool = False) -> MethodSummary | None:
    """The recipe's SGD or Adam baseline row: the tuned one for tuned DBA, so that like is compared with like."""
    role = "tuned-baseline" if tuned else "baseline"
    for summary in summaries:
        if summary.role == role and summary.method == method:
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
            paper_cell, number(None if paper is None else summary.mean - paper, suffix=" pts"),
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


@dataclass
class Paired:
    """A tuned DBA row against the better tuned baseline, on the seeds both have."""

    dba: MethodSummary
    baseline: MethodSummary
    seeds: list[int]
    dba_accuracies: list[float]
    baseline_accuracies: list[float]
    difference: PairedDifference


def headline_pairs(summaries: list[MethodSummary]) -> list[Paired]:
    """Each tuned DBA row minus the tuned baseline with the higher mean, paired by seed (same seed, same subset).

    Pairs are formed only on the seeds both methods finished, so a method with more seeds
    than the other adds nothing until its partner has them too.
    """
    baselines = [summary for summary in summaries if summary.role == "tuned-baseline"]
    if not baselines:
        return []
    best = max(baselines, key=lambda summary: summary.mean)  # first in table order on a tie
    found = []
    for summary in summaries:
        if summary.role == "tuned" and summary.method == "dba":
            seeds, dba, baseline = pair_by_seed(summary.by_seed, best.by_seed)
            found.append(Paired(summary, best, seeds, dba, baseline, paired_difference(dba, baseline)))
    return found


def glance_row(recipe_name: str, recipe: Recipe | None, pair: Paired) -> list[str]:
    """One row of the at-a-glance table: a setting, its tuned DBA against the better tuned baseline."""
    d = pair.difference
    if d.n > 1 and d.t_low > 0:
        reading = "DBA better"
    elif d.n > 1 and d.t_high < 0:
        reading = "DBA worse"
    else:
        reading = "no difference shown"
    return [
        recipe_name,
        recipe.defaults.dataset if recipe else "–",
        (("MLP, " if recipe.defaults.architecture == "mlp" else "") + describe_model(recipe.defaults)) if recipe else "–",
        "paper" if recipe and recipe.claim.dba_accuracy is not None else "beyond the paper",
        str(d.n),
        f"{pair.dba.mean:.2f}",
        f"{pair.baseline.method_name} {pair.baseline.mean:.2f}",
        f"{d.mean:+.2f}" if d.n else "–",
        interval(d.t_low, d.t_high),
        reading,
    ]


def glance_section(rows: list[list[str]]) -> list[str]:
    """Every data-scarce setting's headline in one table (each recipe's section has the details)."""
    if not rows:
        return []
    header = ["recipe", "data set", "model", "setting", "n pairs", "tuned DBA %", "better tuned baseline %",
              "DBA − baseline, pts", "95% t interval", "reading"]
    return [
        "",
        "## At a glance: tuned DBA minus the better tuned baseline, every data-scarce setting",
        "",
        "Each row is one recipe's headline (its section below has the per-method table and the bootstrap interval): "
        "mean per-seed difference in test-accuracy points with its 95% paired t interval. \"DBA better\" or "
        "\"DBA worse\" only where the interval excludes 0. Settings beyond the paper (Fashion-MNIST, the CNN) "
        "run the paper's protocol unchanged apart from the data set or the model.",
        "",
        markdown_table(header, rows, "llllrrlrrl"),
    ]


def seed_list(seeds: list[int]) -> str:
    """`0–9` for consecutive seeds, else `0, 2, 5`."""
    if len(seeds) > 2 and seeds == list(range(seeds[0], seeds[-1] + 1)):
        return f"{seeds[0]}–{seeds[-1]}"
    return ", ".join(map(str, seeds)) or "none"


def paired_section(recipe: Recipe | None, pairs: list[Paired]) -> str:
    """The headline of a data-scarce setting: the paired difference with its t and bootstrap intervals."""
    rows, sentences = [], []
    for pair in pairs:
        d = pair.difference
        rows.append([
            pair.dba.method_name, pair.baseline.method_name, str(d.n), seed_list(pair.seeds),
            f"{d.mean:+.2f}" if d.n else "–", interval(d.t_low, d.t_high), interval(d.boot_low, d.boot_high),
            number(error_reduction(pair.baseline, pair.dba), suffix="%"),
        ])
        sentence = f"- **{pair.dba.method_name} − {pair.baseline.method_name}** (n = {d.n} pairs): {ruled_out(d)}"
        claim = recipe.claim if recipe else None
        if claim and claim.dba_accuracy is not None and claim.implied_baseline_accuracy is not None:
            claimed = claim.dba_accuracy - claim.implied_baseline_accuracy
            excluded = d.n > 1 and claimed > d.t_high
            sentence += (
                f" The paper's numbers imply an improvement of {claimed:+.2f} points "
                f"({claim.dba_accuracy:.2f}% against an implied {claim.implied_baseline_accuracy:.2f}%)"
                + (", which the interval rules out." if excluded else ".")
            )
        sentences.append(sentence)
    header = [
        "DBA", "best tuned baseline", "n pairs", "seeds", "mean difference, pts", "95% t interval",
        "95% bootstrap interval", "error reduction vs it (means)",
    ]
    return "\n".join([
        "### Headline: tuned DBA minus the better tuned baseline, paired by seed",
        "",
        "Per seed (the same seed is the same training subset and the same initial weights), the difference "
        "DBA − baseline in test-accuracy points; the baseline is whichever tuned baseline has the higher mean. "
        "Mean of the differences with a 95% paired t interval and, as a check that does not assume normal "
        f"differences, a 95% percentile bootstrap interval ({RESAMPLES:,} resamples, RNG seed {BOOTSTRAP_SEED}; too narrow "
        "with few pairs). The error reduction compares the two rows' means, as in the table above.",
        "",
        markdown_table(header, rows, "llrlrrrr"),
        "",
        *sentences,
    ])


def paired_csv(pair: Paired) -> dict:
    """The pairs and their intervals, for the DBA row of paper-tables.csv."""
    d = pair.difference
    return {
        "paired_baseline": pair.baseline.method_name,
        "paired_n": d.n,
        "paired_seeds": " ".join(map(str, pair.seeds)),
        "paired_dba_accuracy": " ".join(f"{a:.2f}" for a in pair.dba_accuracies),
        "paired_baseline_accuracy": " ".join(f"{a:.2f}" for a in pair.baseline_accuracies),
        "paired_differences": " ".join(f"{x:.2f}" for x in d.differences),
        "paired_mean_difference": d.mean,
        "paired_t_low": d.t_low,
        "paired_t_high": d.t_high,
        "paired_bootstrap_low": d.boot_low,
        "paired_bootstrap_high": d.boot_high,
    }


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
    Each method is held to its own seed count (`seeds:` in the method, else the recipe's).
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
        expected = recipe.seed_count(method, smoke)
        found = len({seed for name, seed, _ in finished if name == method and 0 <= seed < expected})
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
        "For a data-scarce setting the headline is its last part: tuned DBA minus the better tuned baseline, "
        "paired by seed, with 95% intervals. Recipes beyond the paper (Fashion-MNIST, the CNN) have no claim: "
        "their \"paper\" columns show –.",
        "",
        versions,
    ]
    glance: list[list[str]] = []
    csv_rows: list[dict] = []
    for name in ordered:
        recipe = packaged_recipe(name)
        subset = frame[frame["recipe"] == name]
        summaries = summarise(subset)
        order = table_order(recipe, [summary.method_name for summary in summaries])
        summaries.sort(key=lambda summary: order.index(summary.method_name))
        warn_unfinished(recipe, zip(subset["method_name"], subset["seed"], subset["epochs"]), results_dir)
        devices = ", ".join(sorted(set(subset["device"])))
        sections += ["", f"## {name}", "", (recipe.description if recipe else ""), ""]
        if recipe and recipe.defaults.data == "full":
            table, rows = convergence_table(recipe, subset, summaries)
            sections += [table, "", f"Trained on: {devices}. The paper claims faster convergence with DBA, without a figure."]
            if any(epoch["test_accuracy"] is None for document in subset["document"] for epoch in document["history"]):
                sections[-1] += (
                    " Epochs and seconds to a target count to the first *evaluated* epoch at or above it "
                    "(the recipe's `evaluation:` schedule skips some epochs), so they are upper bounds."
                )
            sections += convergence_section(results_dir, name, recipe.claim.convergence if recipe else None)
        else:
            table, rows = scarce_table(recipe, summaries)
            sections += [table, ""]
            if recipe and recipe.claim.dba_accuracy is not None:
                sections.append(
                    f"Paper: DBA {recipe.claim.dba_accuracy:.2f}%, {recipe.claim.error_reduction:.2f}% less error "
                    f"than SGD/Adam (implied baseline ≈ {recipe.claim.implied_baseline_accuracy:.2f}%). Trained on: {devices}."
                )
                sections += ["", verdict(recipe, summaries)]
            pairs = headline_pairs(summaries)
            glance += [glance_row(name, recipe, pair) for pair in pairs]
            if pairs:
                sections += ["", paired_section(recipe, pairs)]
                extra = {pair.dba.method_name: paired_csv(pair) for pair in pairs}
                rows = [{**row, **extra.get(row["method_name"], {})} for row in rows]
        csv_rows += rows
    sections[5:5] = glance_section(glance)  # after the introduction and the code versions
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
