"""Comparing a retrained run with its committed result file: how far a fresh clone lands from the published numbers.

`dba verify` retrains some committed runs into a scratch folder and hands each
pair of documents (in memory shape, from results.reading) to `compare`. Three
quantities decide, each against a stated tolerance (TOLERANCE, shown in
`dba verify --help` and docs/usage.md): the final test accuracy (points), the
largest relative difference of the per-epoch training loss, and DBA's kept
subset sizes (the mean absolute difference of the per-epoch mean size, over
epochs and layers). Final accuracy and kept sizes are judged by default; the
loss history is reported, and judged only when given a tolerance. Why, from
measuring (all 50 runs of mnist-10-per-class retrained on another platform,
same code, docs/usage.md#verify-the-committed-results): final accuracies
differed by at most 0.01 points and kept sizes by at most 0.02 samples on
average, but float32 rounding differences grow over 300 epochs, to 3.7%
(relative) in the loss of one run late in training, where the loss is 0.014
and the difference 5e-4. A bound on the loss tight enough to mean something
would fail on rounding; the accuracy bound (0.05 points, 5 times the largest
measured difference) is what a published number needs.
Pure functions of the two files: no torch, nothing trains here.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..results.format import code_label


@dataclass(frozen=True)
class Tolerance:
    """How far a retrained run may be from its committed file and still count as reproduced."""

    accuracy_points: float = 0.05  # |final test accuracy difference|, percentage points
    loss_relative: float | None = None  # largest |a - b| / |a| over the per-epoch training losses; None: reported only
    kept_samples: float = 1.0  # mean |difference| of DBA's per-epoch mean kept size, samples

    def text(self) -> str:
        loss = ("loss history reported, not judged" if self.loss_relative is None
                else f"loss history within {self.loss_relative:g} relative")
        samples = "sample" if self.kept_samples == 1 else "samples"
        return (f"final accuracy within {self.accuracy_points:g} points, {loss}, "
                f"DBA's kept sizes within {self.kept_samples:g} {samples} on average")


TOLERANCE = Tolerance()


@dataclass(frozen=True)
class RunComparison:
    """One committed run against its retraining. `None` where a quantity does not apply (kept sizes of a baseline)."""

    key: str  # RECIPE/METHOD/seed-N.json
    method_name: str
    seed: int
    committed_accuracy: float
    retrained_accuracy: float
    loss_relative: float | None  # largest relative difference of the training loss over the common epochs
    evaluated_accuracy: float | None  # largest |difference| of test accuracy over the epochs both evaluated
    kept_difference: float | None  # mean |difference| of DBA's mean kept size per epoch and layer
    committed_code: str  # its code hash (or 'edited')
    retrained_code: str
    problems: tuple[str, ...] = field(default=())  # what makes the pair not comparable as it should be

    @property
    def accuracy_difference(self) -> float:
        """Retrained minus committed, percentage points."""
        return self.retrained_accuracy - self.committed_accuracy

    @property
    def same_code(self) -> bool:
        return self.committed_code == self.retrained_code

    def failures(self, tolerance: Tolerance) -> list[str]:
        """What lies outside `tolerance` (empty: reproduced)."""
        found = list(self.problems)
        if abs(self.accuracy_difference) > tolerance.accuracy_points:
            found.append(f"final accuracy differs by {self.accuracy_difference:+.2f} points")
        if tolerance.loss_relative is not None and self.loss_relative is not None \
                and self.loss_relative > tolerance.loss_relative:
            found.append(f"loss history differs by up to {self.loss_relative:.2g} (relative)")
        if self.kept_difference is not None and self.kept_difference > tolerance.kept_samples:
            found.append(f"kept sizes differ by {self.kept_difference:.2g} samples on average")
        return found

    def within(self, tolerance: Tolerance) -> bool:
        return not self.failures(tolerance)


def relative_difference(committed: list, retrained: list) -> float | None:
    """max |a - b| / |a| over pairs of numbers (|a - b| where a is 0); None if no pair holds two numbers."""
    pairs = [(a, b) for a, b in zip(committed, retrained) if is_number(a) and is_number(b)]
    if not pairs:
        return None
    return max(abs(a - b) / abs(a) if a else abs(a - b) for a, b in pairs)


def is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def evaluated(history: list[dict]) -> dict[int, float]:
    """Epoch -> test accuracy, for the epochs a run evaluated."""
    return {r["epoch"]: r["test_accuracy"] for r in history if is_number(r.get("test_accuracy"))}


def kept_sizes(history: list[dict]) -> dict[tuple[int, str], float]:
    """(epoch, layer) -> DBA's mean kept size that epoch; empty for a baseline."""
    return {
        (r["epoch"], layer): stats["mean"]
        for r in history for layer, stats in (r.get("kept") or {}).items()
        if isinstance(stats, dict) and is_number(stats.get("mean"))
    }


def config_differences(committed: dict, retrained: dict) -> list[str]:
    """The config fields in which the two runs differ (none when the retraining used the committed config)."""
    a, b = committed.get("config") or {}, retrained.get("config") or {}
    return sorted(key for key in set(a) | set(b) if a.get(key) != b.get(key))


def compare(key: str, committed: dict, retrained: dict) -> RunComparison:
    """The committed result document against its retraining (both as results.reading.read_result returns them)."""
    problems = []
    changed = config_differences(committed, retrained)
    if changed:
        problems.append(f"config differs in: {', '.join(changed)}")
    old, new = committed["history"], retrained["history"]
    if len(old) != len(new):
        problems.append(f"{len(new)} epochs retrained, {len(old)} committed")
    accuracies_old, accuracies_new = evaluated(old), evaluated(new)
    common = sorted(set(accuracies_old) & set(accuracies_new))
    kept_old, kept_new = kept_sizes(old), kept_sizes(new)
    if set(kept_old) != set(kept_new):
        problems.append("DBA's kept sizes are recorded for other epochs or layers")
    shared = set(kept_old) & set(kept_new)
    return RunComparison(
        key=key,
        method_name=committed["method_name"],
        seed=committed["seed"],
        committed_accuracy=committed["final_test_accuracy"],
        retrained_accuracy=retrained["final_test_accuracy"],
        loss_relative=relative_difference([r["train_loss"] for r in old], [r["train_loss"] for r in new]),
        evaluated_accuracy=max((abs(accuracies_old[e] - accuracies_new[e]) for e in common), default=None),
        kept_difference=sum(abs(kept_old[k] - kept_new[k]) for k in shared) / len(shared) if shared else None,
        committed_code=code_label(committed),
        retrained_code=code_label(retrained),
        problems=tuple(problems),
    )


@dataclass(frozen=True)
class Summary:
    """Every comparison of one verification, in all."""

    runs: int
    within: int
    largest_accuracy: float  # largest |final accuracy difference|, points
    largest_loss: float | None
    largest_kept: float | None
    other_code: int  # committed runs made by another code hash than the retraining

    @property
    def passed(self) -> bool:
        return self.runs > 0 and self.within == self.runs


def summarize(comparisons: list[RunComparison], tolerance: Tolerance) -> Summary:
    def largest(values):
        values = [v for v in values if v is not None]
        return max(values) if values else None

    return Summary(
        runs=len(comparisons),
        within=sum(c.within(tolerance) for c in comparisons),
        largest_accuracy=largest(abs(c.accuracy_difference) for c in comparisons) or 0.0,
        largest_loss=largest(c.loss_relative for c in comparisons),
        largest_kept=largest(c.kept_difference for c in comparisons),
        other_code=sum(not c.same_code for c in comparisons),
    )


def selected(documents: dict[str, dict], count: int | None, method_order: list[str]) -> list[str]:
    """Which committed runs to retrain: `count` of them (None: all), spread over every method before a second seed.

    Round robin: each method's lowest seed first (methods in `method_order`, then any
    others by name), then each one's second seed, and so on; so the default, one
    run per method, covers every method at the cost of one run each.
    """
    by_method: dict[str, list[tuple[int, str]]] = {}
    for key, document in documents.items():
        by_method.setdefault(document["method_name"], []).append((document["seed"], key))
    rank = {name: index for index, name in enumerate(method_order)}
    methods = sorted(by_method, key=lambda name: (rank.get(name, len(rank)), name))
    queues = [sorted(by_method[name]) for name in methods]
    order = [queue[i][1] for i in range(max(map(len, queues), default=0)) for queue in queues if i < len(queue)]
    return order if count is None else order[:count]
