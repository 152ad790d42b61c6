"""The verdicts of the paper tables: every tuned DBA − tuned baseline comparison, tested as one family.

Each data-scarce recipe with tuned methods compares its tuned DBA with each of
its tuned baselines, paired by seed (the same seed is the same subset and the
same initial weights): the mean difference in test-accuracy points, its 95%
paired t interval, and the paired t test's p-value. All the comparisons of a
table are one family of tests: their p-values are adjusted together (Holm),
and "DBA better" or "DBA worse" is written only where the adjusted p is below
0.05; anything else is "no difference shown", with its interval. The
comparator of a recipe (its headline) is the tuned baseline with the higher
validation accuracy (reports/headline.py), never chosen on the test set.
Every comparison's sensitivity: recomputed with each family's runners-up from
`dba tune`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

from ..recipes.recipe import Recipe
from ..settings.run import describe_model
from .headline import Sensitivity, comparator, paired, sensitivity
from .markdown import interval, markdown_table, number
from .stats import BOOTSTRAP_SEED, RESAMPLES, PairedDifference, holm, ruled_out
from .summaries import MethodSummary, error_reduction

ALPHA = 0.05


@dataclass
class Comparison:
    """A tuned DBA row against one tuned baseline of the same recipe, on the seeds both have."""

    recipe_name: str
    recipe: Recipe | None
    dba: MethodSummary
    baseline: MethodSummary
    seeds: list[int]
    difference: PairedDifference
    comparator: bool  # the recipe's headline: the tuned baseline with the higher validation accuracy
    sensitivity: Sensitivity | None = None
    p_holm: float = math.nan

    @property
    def verdict(self) -> str:
        """"DBA better" / "DBA worse" only where the Holm-adjusted p is below ALPHA, else "no difference shown"."""
        if not math.isnan(self.p_holm) and self.p_holm < ALPHA:
            return "DBA better" if self.difference.mean > 0 else "DBA worse"
        return "no difference shown"


def comparisons_of(recipe_name: str, recipe: Recipe | None, summaries: list[MethodSummary], results_dir: Path) -> list[Comparison]:
    """Every tuned DBA row against every tuned baseline row of one recipe; the comparator first."""
    baselines = [s for s in summaries if s.role == "tuned-baseline"]
    dbas = [s for s in summaries if s.role == "tuned" and s.method == "dba"]
    best = comparator({s.method_name: s.documents for s in baselines})
    found = []
    for dba in dbas:
        for baseline in sorted(baselines, key=lambda s: s.method_name != best):
            seeds, difference = paired(dba.documents, baseline.documents)
            is_comparator = baseline.method_name == best
            moved = sensitivity(results_dir, recipe_name, (dba.method_name, dba.documents), (baseline.method_name, baseline.documents))
            found.append(Comparison(recipe_name, recipe, dba, baseline, seeds, difference, is_comparator, moved))
    return found


def adjust(comparisons: list[Comparison]) -> None:
    """Holm over the whole family of comparisons (rows without a p-value are not counted)."""
    for comparison, adjusted in zip(comparisons, holm([c.difference.p_value for c in comparisons])):
        comparison.p_holm = adjusted


def budget_text(recipe: Recipe | None) -> str:
    return recipe.tune.budget_text() if recipe is not None and recipe.tune is not None else "–"


def range_text(comparison: Comparison) -> str:
    found = comparison.sensitivity
    return f"{found.low:+.2f} to {found.high:+.2f} ({len(found.cells)} pairs)" if found else "–"


def glance_section(comparisons: list[Comparison]) -> list[str]:
    """Every comparison of the table in one table, with its p-value and its Holm-adjusted p-value."""
    if not comparisons:
        return []
    rows = []
    for c in comparisons:
        recipe = c.recipe
        rows.append([
            c.recipe_name,
            recipe.defaults.dataset if recipe else "–",
            (("MLP, " if recipe.defaults.architecture == "mlp" else "") + describe_model(recipe.defaults)) if recipe else "–",
            budget_text(recipe),
            str(c.difference.n),
            f"{c.dba.mean:.2f}",
            f"{c.baseline.method_name} {c.baseline.mean:.2f}" + (" (comparator)" if c.comparator else ""),
            f"{c.difference.mean:+.2f}" if c.difference.n else "–",
            interval(c.difference.t_low, c.difference.t_high),
            number(c.difference.p_value, 3),
            number(c.p_holm, 3),
            f"**{c.verdict}**" if c.verdict != "no difference shown" else c.verdict,
            range_text(c),
        ])
    header = ["recipe", "data set", "model", "tuning budget", "n pairs", "tuned DBA %", "tuned baseline %",
              "DBA − baseline, pts", "95% t interval", "p", "p (Holm)", "verdict", "sensitivity (best settings, pairs)"]
    return [
        "",
        "## At a glance: tuned DBA against each tuned baseline, every data-scarce setting",
        "",
        f"Each row: the mean per-seed difference in test-accuracy points with its 95% paired t interval and the paired "
        f"t test's two-sided p-value. The family of tests is every row of this table ({len(comparisons)} comparisons); "
        f"their p-values are adjusted together by Holm's method, and \"DBA better\" or \"DBA worse\" is written only "
        f"where the adjusted p is below {ALPHA}: otherwise \"no difference shown\", with the interval. Each recipe's "
        "comparator (its headline, below) is the tuned baseline with the higher mean validation accuracy on the reported "
        "seeds' validation splits, never chosen on the test set. Tuning budget: the settings each family tried, and "
        "the tuning seeds (`dba tune`, results/tune/). Sensitivity: each row's mean difference recomputed for every "
        "pair of DBA's and that baseline's best settings on the tuning seeds (the tuned one and its runners-up, each run "
        "on the reported seeds), as a range: a range that straddles zero says the row hangs on a near tie in tuning. "
        "Settings beyond the paper (Fashion-MNIST, the CNN) run the paper's protocol unchanged apart from the data set "
        "or the model.",
        "",
        markdown_table(header, rows, "llllrrlrrrrll"),
    ]


def seed_list(seeds: list[int]) -> str:
    """`0–9` for consecutive seeds, else `0, 2, 5`."""
    if len(seeds) > 2 and seeds == list(range(seeds[0], seeds[-1] + 1)):
        return f"{seeds[0]}–{seeds[-1]}"
    return ", ".join(map(str, seeds)) or "none"


def paired_section(recipe: Recipe | None, comparisons: list[Comparison]) -> str:
    """A data-scarce setting's headline: each comparison with its t and bootstrap intervals, p and Holm p."""
    rows, sentences = [], []
    for c in comparisons:
        d = c.difference
        rows.append([
            c.dba.method_name, c.baseline.method_name + (" (comparator)" if c.comparator else ""), str(d.n), seed_list(c.seeds),
            f"{d.mean:+.2f}" if d.n else "–", interval(d.t_low, d.t_high), interval(d.boot_low, d.boot_high),
            number(d.p_value, 3), number(c.p_holm, 3), c.verdict, number(error_reduction(c.baseline, c.dba), suffix="%"),
        ])
        if not c.comparator:
            continue
        sentence = f"- **{c.dba.method_name} − {c.baseline.method_name}** (n = {d.n} pairs): {c.verdict} (Holm-adjusted p {number(c.p_holm, 3)}). {ruled_out(d)}"
        claim = recipe.claim if recipe else None
        if claim and claim.dba_accuracy is not None and claim.implied_baseline_accuracy is not None:
            claimed = claim.dba_accuracy - claim.implied_baseline_accuracy
            excluded = d.n > 1 and claimed > d.t_high
            sentence += (
                f" The paper's numbers imply an improvement of {claimed:+.2f} points "
                f"({claim.dba_accuracy:.2f}% against an implied {claim.implied_baseline_accuracy:.2f}%)"
                + (", which the interval rules out." if excluded else ".")
            )
        if c.sensitivity is not None:
            sentence += (f" With the runners-up of tuning in place of the chosen settings, the difference ranges from "
                         f"{c.sensitivity.low:+.2f} to {c.sensitivity.high:+.2f} points ({len(c.sensitivity.cells)} pairs of settings).")
        sentences.append(sentence)
    header = ["DBA", "tuned baseline", "n pairs", "seeds", "mean difference, pts", "95% t interval",
              "95% bootstrap interval", "p", "p (Holm)", "verdict", "error reduction vs it (means)"]
    return "\n".join([
        "### Headline: tuned DBA minus each tuned baseline, paired by seed",
        "",
        "Per seed (the same seed is the same training subset and the same initial weights), the difference "
        "DBA − baseline in test-accuracy points. Mean of the differences with a 95% paired t interval, the t test's "
        "p-value, the same p adjusted by Holm over every comparison of these tables (see At a glance), and, as a check "
        f"that does not assume normal differences, a 95% percentile bootstrap interval ({RESAMPLES:,} resamples, RNG "
        f"seed {BOOTSTRAP_SEED}; too narrow with few pairs). The comparator is the tuned baseline with the higher "
        "validation accuracy. The error reduction compares the two rows' means, as in the table above.",
        "",
        markdown_table(header, rows, "llrlrrrrrlr"),
        "",
        *sentences,
    ])


def paired_csv(c: Comparison) -> dict:
    """The comparator's pairs, intervals and p-values, for the DBA row of paper-tables.csv."""
    d = c.difference
    return {
        "paired_baseline": c.baseline.method_name,
        "paired_n": d.n,
        "paired_seeds": " ".join(map(str, c.seeds)),
        "paired_differences": " ".join(f"{x:.2f}" for x in d.differences),
        "paired_dba_accuracy": " ".join(f"{c.dba.by_seed[seed]:.2f}" for seed in c.seeds),
        "paired_baseline_accuracy": " ".join(f"{c.baseline.by_seed[seed]:.2f}" for seed in c.seeds),
        "paired_mean_difference": d.mean,
        "paired_t_low": d.t_low,
        "paired_t_high": d.t_high,
        "paired_bootstrap_low": d.boot_low,
        "paired_bootstrap_high": d.boot_high,
        "paired_p": d.p_value,
        "paired_p_holm": c.p_holm,
        "paired_verdict": c.verdict,
        "sensitivity_low": c.sensitivity.low if c.sensitivity else None,
        "sensitivity_high": c.sensitivity.high if c.sensitivity else None,
    }
