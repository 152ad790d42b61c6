"""The protocol declaration (dba_cli/protocol.yaml): the rules every study and report follows, read once.

A declaration fixes what a reviewer would otherwise have to trust: the seed
ranges (tuning, design, reported; disjoint), where choices are validated, the
budget and the axes every family shares, how candidates are ranked, what a
failed run is, the edge rule, the hypotheses (primary and secondary) and the
tests. Its `digest` (16 hex digits of SHA-256 over the validated values, so
comments and layout do not count) goes into every result file; a result
made under another digest is stale (run/plan.py) and left out of every
verdict (reports/). `DBA_PROTOCOL=FILE` reads another declaration.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import subprocess
from functools import cached_property, lru_cache
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, ValidationError, model_validator

from ..errors import ConfigError
from ..settings.environment import PROTOCOL as PROTOCOL_ENV
from ..settings.names import SafeName
from ..settings.validation import Float, Int, Strict, config_error
from .safe_yaml import load_yaml_file

PACKAGED = Path(__file__).resolve().parent.parent / "protocol.yaml"
DIGEST_LENGTH = 16
MAX_SEED = 2**31 - 1


class SeedRange(Strict):
    first: Int = Field(ge=0, le=MAX_SEED - 1000)
    count: Int = Field(ge=1, le=1000)

    @property
    def seeds(self) -> range:
        return range(self.first, self.first + self.count)

    def text(self) -> str:
        return f"{self.first}–{self.first + self.count - 1}" if self.count > 1 else str(self.first)


class Seeds(Strict):
    tuning: SeedRange
    design: SeedRange
    reported: SeedRange

    @model_validator(mode="after")
    def disjoint(self) -> Seeds:
        ranges = {"tuning": self.tuning.seeds, "design": self.design.seeds, "reported": self.reported.seeds}
        names = list(ranges)
        for i, a in enumerate(names):
            for b in names[i + 1:]:
                if set(ranges[a]) & set(ranges[b]):
                    raise ValueError(f"the {a} and {b} seed ranges overlap; they must be disjoint (move one)")
        return self


class Validation(Strict):
    primary: Literal["folds", "holdout"] = "folds"
    folds: Int = Field(5, ge=2, le=20)
    scarce_below: Int = Field(10000, ge=1)
    holdout_size: Int = Field(5000, ge=1, le=59999)


class Ranking(Strict):
    statistic: Literal["mean_minus_sd"] = "mean_minus_sd"
    k: Float = Field(1.0, ge=0, le=10)


class Failure(Strict):
    classes: Int = Field(10, ge=2, le=1000)
    margin: Float = Field(5.0, ge=0, le=100)

    @property
    def chance(self) -> float:
        return 100.0 / self.classes

    @property
    def chance_loss(self) -> float:
        return math.log(self.classes)


class Edge(Strict):
    max_extensions: Int = Field(3, ge=0, le=20)


class Hypothesis(Strict):
    recipe: SafeName
    quantity: Literal["test_accuracy", "steps_to_target"]


class Hypotheses(Strict):
    primary: list[Hypothesis] = Field(min_length=1, max_length=16)


class Tests(Strict):
    alpha: Float = Field(0.05, gt=0, lt=1)
    margin: Float = Field(1.0, gt=0, le=100)
    adjust: Literal["holm"] = "holm"


Axis = Annotated[list[Any], Field(min_length=1, max_length=16)]


class Declaration(Strict):
    """One protocol declaration, validated: see dba_cli/protocol.yaml for every field's meaning."""

    name: SafeName
    seeds: Seeds
    validation: Validation = Field(default_factory=Validation)
    budget: Int = Field(ge=1, le=1000)
    secondary_budget: Int | None = Field(None, ge=1, le=1000)  # K on recipes outside the primary hypotheses; None: budget
    shared_axes: dict[Literal["batch_size", "schedule"], Axis] = Field(default_factory=dict)
    ranking: Ranking = Field(default_factory=Ranking)
    failure: Failure = Field(default_factory=Failure)
    edge: Edge = Field(default_factory=Edge)
    hypotheses: Hypotheses
    tests: Tests = Field(default_factory=Tests)

    @cached_property
    def digest(self) -> str:
        """16 hex digits of SHA-256 over the canonical JSON of the validated values (computed once: it is asked per document)."""
        text = json.dumps(self.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()[:DIGEST_LENGTH]

    def governs(self, document: dict) -> bool:
        """Whether a result document was made under this declaration (any other, or none, is stale)."""
        return document.get("protocol") == self.digest

    def primary(self, recipe: str, quantity: str) -> bool:
        """Whether the comparison of `quantity` on `recipe` is one of the primary hypotheses."""
        return any(h.recipe == recipe and h.quantity == quantity for h in self.hypotheses.primary)

    def budget_for(self, recipe: str) -> int:
        """K for `recipe`'s searches: `budget` where a primary hypothesis names it (or no recipe is given), else `secondary_budget` if declared."""
        if self.secondary_budget is None or not recipe or any(h.recipe == recipe for h in self.hypotheses.primary):
            return self.budget
        return self.secondary_budget

    def shared_size(self) -> int:
        size = 1
        for values in self.shared_axes.values():
            size *= len(values)
        return size


def declaration_path() -> Path:
    """The declaration in force: `DBA_PROTOCOL` if set, else the packaged dba_cli/protocol.yaml."""
    given = os.environ.get(PROTOCOL_ENV)
    return Path(given) if given else PACKAGED


@lru_cache(maxsize=4)
def _load(path: str) -> Declaration:
    document = load_yaml_file(Path(path))
    if not isinstance(document, dict):
        raise ConfigError(f"{path}: a protocol declaration must be a YAML mapping, got {type(document).__name__}.")
    try:
        return Declaration(**document)
    except ValidationError as exc:
        raise config_error(exc, Declaration, path) from None


def declaration() -> Declaration:
    """The validated declaration in force (cached per file), or a one-line ConfigError naming the file and field."""
    return _load(str(declaration_path()))


@lru_cache(maxsize=4)
def introduced_by(path: str) -> str:
    """The commit (short hash and date) that last changed the declaration file, or why it is not known.

    Asked of git in the file's folder; a copy outside a checkout (an installed
    wheel, a scratch declaration) says so instead.
    """
    folder = Path(path).resolve().parent
    try:
        found = subprocess.run(
            ["git", "log", "-1", "--format=%h %cs", "--", Path(path).name], cwd=folder, capture_output=True,
            text=True, timeout=5, check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return "not known (git is not available)"
    text = found.stdout.strip()
    if found.returncode != 0:
        return "not known (not in a git checkout)"
    if not text:
        return "not committed yet"
    dirty = subprocess.run(["git", "diff", "--quiet", "HEAD", "--", Path(path).name], cwd=folder, check=False,
                           capture_output=True, timeout=5).returncode
    return text + (" (with uncommitted changes)" if dirty else "")


def declaration_line(found: Declaration | None = None) -> str:
    """What every report prints: which declaration its verdicts follow."""
    found = found or declaration()
    path = declaration_path()
    where = "dba_cli/protocol.yaml" if path == PACKAGED else str(path)
    return (f"Protocol: declaration `{found.name}` ({where}), digest `{found.digest}`, introduced by commit "
            f"{introduced_by(str(path))}. Results made under another declaration are stale and in no verdict.")
