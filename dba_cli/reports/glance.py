"""The verdicts of the paper tables: every tuned DBA − tuned baseline comparison, under the protocol declaration.

Each recipe with tuned methods compares its tuned DBA with each of its tuned
baselines, paired by seed (the same seed is the same subset and the same
initial weights), over the reported runs made under the declaration in force
(dba_cli/protocol.yaml; others are stale and left out, counted): the mean
difference in test-accuracy points, its 95% paired t interval, the paired t
test's p and the exact sign-flip permutation p beside it, the TOST p for
equivalence within the declared margin and, where the paper states numbers,
the one-sided test of the improvement they imply. The comparisons the
declaration names as primary (DBA against the comparator on the paper's two
data-scarce recipes, with mnist-full's time to target) are one family of
tests, every other comparison a second: Holm's adjustment runs within each.
The words follow the declared rule (stats.verdict). The comparator of a
recipe is fixed on the tuning runs (reports/headline.py), never on a reported
seed or the test set. Every comparison's sensitivity: recomputed with each
family's runners-up from `dba tune`.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass, field
from pathlib import Path

from ..recipes.protocol import declaration, declaration_line
from ..recipes.recipe import Recipe
from ..results.quantities import failed
from ..settings.run import describe_model
from .headline import Sensitivity, by_seed, current, paired, sensitivity, tuning_comparator
from .markdown import interval, markdown_table, number
from .stats import PairedDifference, holm, one_sided_t, ruled_out, tost, verdict
from .summaries import MethodSummary, error_reduction


@dataclass
class Comparison:
    """A tuned DBA row against one tuned baseline of the same recipe, on the seeds both have under this declaration."""

    recipe_name: str
    recipe: Recipe | None
    dba: MethodSummary
    baseline: MethodSummary
    seeds: list[int]
    difference: PairedDifference
    comparator: bool  # the recipe's headline: the baseline family fixed on the tuning runs
    primary: bool = False  # one of the declaration's primary hypotheses
    sensitivity: Sensitivity | None = None
    p_holm: float = math.nan
    p_tost: float = math.nan
    p_tost_holm: float = math.nan
    claimed: float | None = None  # the paper's implied improvement, points
    p_claim: float = math.nan  # one-sided: DBA improves by at least `claimed`; small p rejects it
    excluded: int = 0  # reported runs made under another declaration (or none), left out
    dba_documents: list[dict] = field(default_factory=list)
    baseline_documents: list[dict] = field(default_factory=list)

    @property
    def verdict(self) -> str:
        """The declared words: better / worse (Holm two-sided p), equivalent (Holm TOST p), else no difference shown."""
        tests = declaration().tests
        return verdict(self.p_holm, self.p_tost_holm, self.difference.mean, tests.alpha, tests.margin)

    @property
    def family(self) -> str:
        return "primary" if self.primary else "secondary"


def mean_of(documents: list[dict]) -> float:
    return statistics.fmean(d["final_test_accuracy"] for d in documents) if documents else math.nan


def failures(documents: list[dict]) -> str:
    """Failed runs by the declaration's rule, as "k/n"."""
    rule = declaration().failure
    return f"{sum(failed(d, rule.chance, rule.margin, rule.chance_loss) for d in documents)}/{len(documents)}"


def comparisons_of(recipe_name: str, recipe: Recipe | None, summaries: list[MethodSummary], results_dir: Path) -> list[Comparison]:
    """Every tuned DBA row against every tuned baseline row of one recipe, the comparator first, then against every tuned peer.

    The peers (settings/methods.py: Ordered SGD, small-loss, online batch
    selection, importance sampling, the random-composition control) are never
    the comparator: the paper's claims are against SGD and Adam, so the peers'
    rows are always secondary.
    """
    baselines = [s for s in summaries if s.role == "tuned-baseline"]
    peers = [s for s in summaries if s.role == "tuned-peer"]
    dbas = [s for s in summaries if s.role == "tuned" and s.method == "dba"]
    best = tuning_comparator(recipe, results_dir).name if baselines and dbas else None
    claim = recipe.claim if recipe else None
    claimed = (claim.dba_accuracy - claim.implied_baseline_accuracy
               if claim and claim.dba_accuracy is not None and claim.implied_baseline_accuracy is not None else None)
    margin = declaration().tests.margin
    found = []
    for dba in dbas:
        dba_documents, dba_stale = current(dba.documents)
        for baseline in [*sorted(baselines, key=lambda s: s.method_name != best), *peers]:
            base_documents, base_stale = current(baseline.documents)
            seeds, difference = paired(dba_documents, base_documents)
            is_comparator = baseline.method_name == best
            moved = sensitivity(results_dir, recipe_name, (dba.method_name, dba_documents), (baseline.method_name, base_documents))
            comparison = Comparison(
                recipe_name, recipe, dba, baseline, seeds, difference, is_comparator,
                primary=is_comparator and declaration().primary(recipe_name, "test_accuracy"),
                sensitivity=moved, p_tost=tost(difference.differences, margin), excluded=dba_stale + base_stale,
                dba_documents=dba_documents, baseline_documents=base_documents,
            )
            if is_comparator and claimed is not None:
                comparison.claimed = claimed
                comparison.p_claim = one_sided_t(difference.differences, claimed)
            found.append(comparison)
    return found


def adjust(comparisons: list[Comparison], primary_extra: list[float] | None = None) -> list[float]:
    """Holm within the primary family (with `primary_extra`, e.g. time to target) and, separately, the secondary one.

    Both the two-sided p and the TOST p are adjusted within their family.
    Returns the adjusted `primary_extra` p-values.
    """
    extra = list(primary_extra or [])
    for primary in (True, False):
        members = [c for c in comparisons if c.primary == primary]
        more = extra if primary else []
        adjusted = holm([c.difference.p_value for c in members] + more)
        for comparison, value in zip(members, adjusted):
            comparison.p_holm = value
        tost_adjusted = holm([c.p_tost for c in members] + [math.nan] * len(more))
        for comparison, value in zip(members, tost_adjusted):
            comparison.p_tost_holm = value
        if primary:
            extra_adjusted = adjusted[len(members):]
    return extra_adjusted


def budget_text(recipe: Recipe | None) -> str:
    return recipe.tune.budget_text() if recipe is not None and recipe.tune is not None else "–"


def range_text(comparison: Comparison) -> str:
    found = comparison.sensitivity
    return f"{found.low:+.2f} to {found.high:+.2f} ({len(found.cells)} pairs)" if found else "–"


def p_text(value: float) -> str:
    return number(value, 3)


def claim_text(c: Comparison) -> str:
    """The one-sided test of the paper's implied improvement: its p, and whether it is rejected."""
    if c.claimed is None:
        return "–"
    if math.isnan(c.p_claim):
        return f"{c.claimed:+.2f}: –"
    rejected = c.p_claim < declaration().tests.alpha
    return f"{c.claimed:+.2f}: p {p_text(c.p_claim)}" + (" **rejected**" if rejected else " not rejected")


def glance_rows(comparisons: list[Comparison]) -> list[list[str]]:
    rows = []
    for c in comparisons:
        recipe = c.recipe
        d = c.difference
        rows.append([
            c.family,
            c.recipe_name,
            recipe.defaults.dataset if recipe else "–",
            (("MLP, " if recipe.defaults.architecture == "mlp" else "") + describe_model(recipe.defaults)) if recipe else "–",
            str(d.n) + (f" ({c.excluded} stale left out)" if c.excluded else ""),
            f"{mean_of(c.dba_documents):.2f}" if c.dba_documents else "–",
            f"{c.baseline.method_name} {mean_of(c.baseline_documents):.2f}" + (" (comparator)" if c.comparator else "")
            if c.baseline_documents else c.baseline.method_name + " –",
            f"{d.mean:+.2f}" if d.n else "–",
            interval(d.t_low, d.t_high),
            p_text(d.p_value),
            p_text(d.p_permutation),
            p_text(c.p_holm),
            p_text(c.p_tost_holm),
            claim_text(c),
            f"**{c.verdict}**" if c.verdict != "no difference shown" else c.verdict,
            f"{failures(c.dba_documents)} / {failures(c.baseline_documents)}",
            range_text(c),
        ])
    return rows


def glance_section(comparisons: list[Comparison], time_to_target: list[str] | None = None) -> list[str]:
    """Every comparison of the table in one table: primary family first, each with its tests and Holm-adjusted p-values."""
    if not comparisons and not time_to_target:
        return []
    ordered = sorted(comparisons, key=lambda c: not c.primary)
    tests = declaration().tests
    header = ["family", "recipe", "data set", "model", "n pairs", "tuned DBA %", "tuned baseline or peer %",
              "DBA − it, pts", "95% t interval", "p (t)", "p (sign-flip, exact)", "p (Holm)",
              f"TOST ±{tests.margin:g} p (Holm)", "paper's implied improvement, one-sided", "verdict",
              "failed runs (DBA / baseline)", "sensitivity (best settings, pairs)"]
    primary = sum(c.primary for c in comparisons) + len(time_to_target or [])
    return [
        "",
        "## At a glance: tuned DBA against each tuned baseline and peer, under the protocol declaration",
        "",
        f"{declaration_line()} Each row: the mean per-seed difference in test-accuracy points over the reported seeds "
        f"(paired: same seed, same subset and initial weights) with its 95% paired t interval, the paired t test's "
        f"two-sided p and, beside it, the exact sign-flip permutation p (no normality assumed). The **primary** family is "
        f"the paper's claims as the declaration names them ({primary} test{'s' if primary != 1 else ''}: DBA against the comparator on the declared "
        f"recipes, and time to target); every other row is **secondary**, DBA against its peers (the simpler "
        f"methods that also choose what each step learns from: docs/peers.md) included. Holm's adjustment runs within each family, "
        f"for the two-sided p and for the TOST p (equivalence within ±{tests.margin:g} points). The words: \"DBA "
        f"better\" or \"DBA worse\" where the Holm-adjusted two-sided p is below {tests.alpha:g}; else \"equivalent "
        f"within ±{tests.margin:g}\" where the Holm-adjusted TOST p is below {tests.alpha:g}; else \"no difference "
        f"shown\". The paper's implied improvement is tested one-sided (H0: DBA improves by at least that much; "
        f"\"rejected\" where p < {tests.alpha:g}). A recipe's comparator is the tuned baseline family that ranks best "
        f"on the tuning runs, fixed before any reported seed ran. Failed runs: by the declaration's rule (chance "
        f"accuracy, divergence, a loss never below chance), counted, never dropped. Sensitivity: each row's mean "
        f"difference recomputed for every pair of DBA's and that baseline's best settings on the tuning runs, as a range.",
        "",
        markdown_table(header, glance_rows(ordered), "lllllrlrrrrrrllll"),
        *(["", "Primary, time to target (`dba converge`, exact sign test):", "", *time_to_target] if time_to_target else []),
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
            f"{d.mean:+.2f}" if d.n else "–", interval(d.t_low, d.t_high), number(d.p_permutation, 3),
            number(d.p_value, 3), number(c.p_holm, 3), number(c.p_tost_holm, 3), c.family, c.verdict,
            number(error_reduction(c.baseline, c.dba), suffix="%"),
        ])
        if not c.comparator:
            continue
        sentence = (f"- **{c.dba.method_name} − {c.baseline.method_name}** ({c.family}, n = {d.n} pairs): {c.verdict} "
                    f"(Holm-adjusted p {number(c.p_holm, 3)}, TOST p {number(c.p_tost_holm, 3)}). {ruled_out(d)}")
        claim = recipe.claim if recipe else None
        if c.claimed is not None and claim is not None:
            rejected = not math.isnan(c.p_claim) and c.p_claim < declaration().tests.alpha
            sentence += (
                f" The paper's numbers imply an improvement of {c.claimed:+.2f} points "
                f"({claim.dba_accuracy:.2f}% against an implied {claim.implied_baseline_accuracy:.2f}%); the one-sided "
                f"test of an improvement at least that large gives p {number(c.p_claim, 3)}"
                + (": rejected." if rejected else ": not rejected.")
            )
        if c.sensitivity is not None:
            sentence += (f" With the runners-up of tuning in place of the chosen settings, the difference ranges from "
                         f"{c.sensitivity.low:+.2f} to {c.sensitivity.high:+.2f} points ({len(c.sensitivity.cells)} pairs of settings).")
        sentences.append(sentence)
    header = ["DBA", "tuned baseline", "n pairs", "seeds", "mean difference, pts", "95% t interval",
              "p (sign-flip, exact)", "p (t)", "p (Holm)", "TOST p (Holm)", "family", "verdict", "error reduction vs it (means)"]
    return "\n".join([
        "### Headline: tuned DBA minus each tuned baseline, paired by seed",
        "",
        "Per seed (the same seed is the same training subset and the same initial weights), the difference "
        "DBA − baseline in test-accuracy points. Mean of the differences with a 95% paired t interval, the t test's "
        "p-value, the same p adjusted by Holm within its family (primary or secondary, see At a glance), the TOST p, "
        "and, as a check that does not assume normal differences, the exact sign-flip permutation p. The comparator "
        "is the tuned baseline family that ranks best on the tuning runs. The error reduction compares the two rows' "
        "means, as in the table above.",
        "",
        markdown_table(header, rows, "llrlrrrrrrllr"),
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
        "paired_dba_accuracy": " ".join(f"{by_seed(c.dba_documents)[seed]:.2f}" for seed in c.seeds),
        "paired_baseline_accuracy": " ".join(f"{by_seed(c.baseline_documents)[seed]:.2f}" for seed in c.seeds),
        "paired_mean_difference": d.mean,
        "paired_t_low": d.t_low,
        "paired_t_high": d.t_high,
        "paired_p_permutation": d.p_permutation,
        "paired_p": d.p_value,
        "paired_p_holm": c.p_holm,
        "paired_p_tost_holm": c.p_tost_holm,
        "paired_p_claim": c.p_claim,
        "paired_family": c.family,
        "protocol": declaration().digest,
        "paired_verdict": c.verdict,
        "sensitivity_low": c.sensitivity.low if c.sensitivity else None,
        "sensitivity_high": c.sensitivity.high if c.sensitivity else None,
    }
