"""A planned run: one config of one recipe's method, and where its result lives.

Studies and recipes plan runs; run/ trains them and writes each result to its
`key` under the results folder; reports find them there by the same key.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import ConfigError
from ..settings.evaluation import DEFAULT_SCHEDULE, EvaluationSchedule, evaluated_epochs
from ..settings.names import MAX_PATH_PART_LENGTH, name_problem
from ..settings.run import RunConfig
from ..settings.validation import excerpt

# A result key, flattened with '/' -> '__' plus '.lock' (run/locks.py), must stay one valid file name (255 bytes).
MAX_KEY_LENGTH = 240
# Bounds on a grid, checked before anything is planned: far above any study here (the largest, an ablation, plans
# 360 runs), low enough that a typo (`--seeds 1000000000`) is one line at once, not gigabytes of plans.
MAX_SEEDS = 1000  # seeds of one method or candidate
MAX_RUNS = 100_000  # runs of one grid


def check_grid_size(count: int, what: str) -> None:
    """A ConfigError if a grid of `count` runs is more than MAX_RUNS; `what` names the grid and how it is made."""
    if count > MAX_RUNS:
        raise ConfigError(
            f"{what} makes {count:,} runs; at most {MAX_RUNS:,} are planned at once. Fix: fewer seeds or a smaller grid."
        )


@dataclass(frozen=True)
class PlannedRun:
    """One run of a recipe: which method variant, its role in the tables, and its config.

    `group` files runs that are not paper-table rows (tuning candidates,
    ablation variants, protocol diagnostics) in their own folder. `evaluation`
    says at which epochs the test set (and validation split) is evaluated: the
    recipe's schedule for its runs, `FINAL_ONLY` for runs that need only final
    accuracies (tuning, ablation, protocol).
    """

    recipe: str
    method_name: str
    role: str
    config: RunConfig
    group: str = ""
    evaluation: EvaluationSchedule = DEFAULT_SCHEDULE

    @property
    def evaluated_epochs(self) -> tuple[int, ...]:
        """The epochs this run evaluates (the last always; training adds an epoch where it diverges)."""
        return evaluated_epochs(self.evaluation, self.config.epochs)

    @property
    def key(self) -> str:
        """Where its result lives, relative to the results folder: `[group/]recipe/method/seed-K.json`.

        `group` and `method_name` may hold several '/'-separated parts (tuning,
        protocol); every part must be a name that stays inside the results
        folder (see settings/names.py), or this raises a ConfigError.
        Recipes are checked when loaded; this is the second line of defence.
        """
        parts = [*(self.group.split("/") if self.group else []), self.recipe, *self.method_name.split("/")]
        for part in parts:
            problem = name_problem(part, MAX_PATH_PART_LENGTH)
            if problem is not None:
                raise ConfigError(
                    f"result path of recipe {excerpt(self.recipe)}, method {excerpt(self.method_name)}: "
                    f"part {excerpt(part)} {problem}."
                )
        key = "/".join(parts) + f"/seed-{self.config.seed}.json"
        if len(key) > MAX_KEY_LENGTH:
            raise ConfigError(
                f"result path {excerpt(key)} is {len(key)} characters long; at most {MAX_KEY_LENGTH} fit in a file name. "
                "Fix: shorten the recipe or method name."
            )
        return key
