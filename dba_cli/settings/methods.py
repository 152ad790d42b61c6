"""Every training method, declared once: its name, its own settings, whether it steps a base optimizer, its role when tuned.

DBA's peers are the simpler methods that also decide, from per-sample
information, what each step learns from (../shared/docs/peers.md,
docs/peers.md): Ordered SGD and the small-loss trick (`ordered`), online batch
selection (`online`), importance sampling by a gradient-norm bound
(`importance`), and the random-composition control for DBA (`dba-random`: DBA's
subset sizes, samples chosen at random). Each applies its gradient through a
base optimizer (`base`, as DBA does) and has its settings in the run field of
its own name (`dba-random` shares DBA's: its sizes come from DBA's search).
Where a paper leaves a detail open, it is a setting here with a stated default.
Nothing here imports torch.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from pydantic import ConfigDict, Field
from pydantic.dataclasses import dataclass as config_dataclass

OPTIMIZERS = ("sgd", "adam", "adamw")  # the torch optimizers a run can use, a selection method's base included


@dataclass(frozen=True)
class MethodDeclaration:
    """What the rest of the package needs to know about a method."""

    label: str | None = None  # how reports name a method that steps a base: "DBA over sgd, ..." (settings/run.py describe)
    settings: str | None = None  # the RunConfig field holding its own settings (None: it has none)
    over_base: bool = False  # it steps a base optimizer (`base`) rather than being one
    tuned_role: str = "tuned-baseline"  # its role when `dba tune` chooses it (settings/roles.py)
    kept_sizes: bool = False  # its result files record per-layer kept subset sizes (the DBA engine's)


METHODS: dict[str, MethodDeclaration] = {
    "sgd": MethodDeclaration(),
    "adam": MethodDeclaration(),
    "adamw": MethodDeclaration(),
    "dba": MethodDeclaration("DBA", "dba", True, "tuned", True),
    "dba-random": MethodDeclaration("DBA-random", "dba", True, "tuned-peer", True),  # DBA's sizes, samples at random
    "ordered": MethodDeclaration("Ordered SGD", "ordered", True, "tuned-peer"),  # the q highest (or lowest) losses
    "online": MethodDeclaration("online selection", "online", True, "tuned-peer"),  # batches by loss rank
    "importance": MethodDeclaration("importance sampling", "importance", True, "tuned-peer"),  # a gradient-norm bound
}
SETTINGS_FIELDS = tuple(dict.fromkeys(m.settings for m in METHODS.values() if m.settings))  # dba, ordered, online, importance

FROZEN = ConfigDict(extra="forbid")


@config_dataclass(frozen=True, config=FROZEN)
class OrderedConfig:
    """Ordered SGD (Kawaguchi & Lu 2020) and its mirror, the small-loss trick (Co-teaching's single network).

    keep: "largest": step on the q highest-loss samples of each mini-batch
        (Ordered SGD); "smallest": on the q lowest (small-loss).
    fraction: q = max(1, round(fraction x the batch's size)).
    ramp_epochs: the kept fraction falls linearly from 1 at epoch 1 to
        `fraction` at epoch `ramp_epochs` (Co-teaching's schedule, there with
        fraction = 1 - the assumed noise rate); 0 or 1: `fraction` from the
        start (Ordered SGD's analysis). Ordered SGD's released code instead
        halves q as training accuracy passes thresholds; that schedule is not offered.
    """

    keep: Literal["largest", "smallest"] = Field(
        "largest", description="Which losses Ordered SGD keeps (largest: Ordered SGD; smallest: the small-loss trick)"
    )
    fraction: float = Field(0.5, gt=0, le=1, allow_inf_nan=False, description="Fraction q/B of each batch kept")
    ramp_epochs: int = Field(
        0, ge=0, le=100_000, strict=True, description="Epochs over which the kept fraction falls from 1 to --fraction (0: from the start)"
    )


@config_dataclass(frozen=True, config=FROZEN)
class OnlineConfig:
    """Online batch selection (Loshchilov & Hutter 2015): mini-batches drawn by the rank of each sample's latest loss.

    pressure: s_e, the selection pressure: the highest-loss sample is drawn
        about s_e times as often as the lowest (p(rank r) ∝ exp(−ln(s_e) r / N),
        r = 0 for the highest loss). The paper tries 1e2 to 1e8.
    pressure_end: s_e at the last epoch, reached by log-linear decay over the
        epochs (the paper decays it); None: constant.
    refresh_epochs: every this many epochs (from epoch 1), the losses of all N
        training samples are recomputed in one forward pass; in between, a
        step's forward pass updates the losses of its batch.
    A batch is drawn without replacement within itself (and with replacement
    across batches); an epoch is ceil(N / B) batches, as for plain SGD.
    """

    pressure: float = Field(
        100.0, ge=1, le=1e12, allow_inf_nan=False,
        description="Selection pressure s_e: the highest-loss sample is drawn about s_e times as often as the lowest",
    )
    pressure_end: float | None = Field(
        None, ge=1, le=1e12, allow_inf_nan=False, description="s_e at the last epoch (log-linear decay; none: constant)"
    )
    refresh_epochs: int = Field(
        1, ge=1, le=100_000, strict=True, description="Recompute every training sample's loss every this many epochs"
    )


@config_dataclass(frozen=True, config=FROZEN)
class ImportanceConfig:
    """Importance sampling by an upper bound of the gradient norm (Katharopoulos & Fleuret 2018).

    presample: b = min(ceil(presample x B), N) samples are drawn uniformly
        (without replacement); B of them are drawn with replacement with
        probability g_i ∝ ||softmax(z_i) − onehot(y_i)|| (the norm of the loss
        gradient at the last layer's output), each weighted 1 / (b g_i) in the
        mean loss, so the expected gradient is the presample's mean gradient.
    switch: "variance": importance sampling starts only once the smoothed
        variance-reduction estimate τ exceeds `threshold` (the paper's rule;
        until then uniform batches of B, whose scores update τ); "always": from
        the first step.
    threshold: τ_th (the paper's code uses 1.2 by default).
    smoothing: a_τ, τ ← a_τ τ + (1 − a_τ) / sqrt(1 − Σ(g_i − 1/n)² / Σ g_i²).
    """

    presample: float = Field(
        3.0, ge=1, le=1000, allow_inf_nan=False, description="Presample b as a multiple of the batch size B"
    )
    switch: Literal["variance", "always"] = Field(
        "variance", description="When importance sampling starts (variance: once the variance-reduction estimate passes --threshold)"
    )
    threshold: float = Field(
        1.2, ge=1, le=1000, allow_inf_nan=False, description="The variance-reduction estimate above which importance sampling is on"
    )
    smoothing: float = Field(
        0.9, ge=0, lt=1, allow_inf_nan=False, description="Smoothing a_tau of the variance-reduction estimate"
    )


def declared(method: str) -> MethodDeclaration:
    """A method's declaration (KeyError-free for unknown names: those fail validation elsewhere)."""
    return METHODS.get(method, METHODS["sgd"])
