"""What does a DBA step cost, next to a plain SGD step and a naive DBA?

Four ways to take one training step on the same model (the 784-H-10 ReLU MLP, or
with `architecture="cnn"` the small CNN of models.py, whose convolutions take
DBA's Conv2d fast path, dba/gram_conv.py; same initial weights, same batches), timed interleaved in one process, round-robin within
each repeat so that machine noise hits all of them alike; we report medians:

- sgd:   forward, mean cross-entropy, backward, SGD step (zero_grad(set_to_none=True));
- gram:  forward, per-sample output gradients, the Gram matrix of both layers
         (`DBA.layer_grams`): all that DBA computes before its search;
- dba:   the full DBA step (variance, minimize, min_size = B // 2, SGD base);
- naive: the same DBA without Gram matrices: per-sample gradients of every
         parameter materialised with torch.func (B copies of the weights), and
         the greedy search recomputing, each round and from the gradient
         vectors of the current subset, the variance of every S minus {k}
         (vectorised over k; two passes over all B x P gradients per round),
         then the same step. Seconds per step, so it runs only `naive_repeats`
         times and without warm-up;
- DBA's peers (settings/methods.py), each through the training loop's own
  Stepper at a middle setting of its tuning grid, its batch drawn as in
  training from a pool of the bench's batches: Ordered SGD (q = B/2), small-loss
  (q = 0.8 B), online batch selection (s_e 100; the draw from the loss ranks is
  inside each step, the refresh of all losses once per pass over the pool),
  importance sampling (always on, presample 3 B: its scoring forward pass is
  inside each step) and the random-composition control (DBA's step, samples at
  random). The median leaves out the rare steps that refresh a loss table.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call, grad, vmap

from ..dba.config import DBAConfig
from ..dba.engine import DBA
from ..models import build_cnn
from ..reports.markdown import markdown_table
from ..settings.run import run_config
from ..training.optim import Stepper

VARIANTS = {
    "sgd": "plain SGD step",
    "gram": "per-sample Gram only (no search, no step)",
    "dba": "DBA step (variance, min_size B/2)",
    "naive": "naive DBA (materialised per-sample grads)",
    "ordered": "Ordered SGD step (q = B/2 highest losses)",
    "small-loss": "small-loss step (q = 0.8 B lowest losses)",
    "online": "online batch selection step (s_e 100)",
    "importance": "importance sampling step (presample 3 B, always on)",
    "dba-random": "random-composition control (DBA's sizes)",
}


def peer_settings(batch_size: int) -> dict[str, dict]:
    """Each peer's run settings in the bench: a middle setting of its recipe tuning grid."""
    return {
        "ordered": {"method": "ordered", "ordered": {"keep": "largest", "fraction": 0.5}},
        "small-loss": {"method": "ordered", "ordered": {"keep": "smallest", "fraction": 0.8}},
        "online": {"method": "online", "online": {"pressure": 100.0}},
        "importance": {"method": "importance", "importance": {"presample": 3.0, "switch": "always"}},
        "dba-random": {"method": "dba-random", "dba": {"metric": "variance", "direction": "minimize",
                                                        "min_size": max(1, batch_size // 2)}},
    }
LEARNING_RATE = 0.01  # small: the models should not diverge while we time them

Step = Callable[[torch.Tensor, torch.Tensor], object]


def benchmark_steps(
    batch_sizes: tuple[int, ...] = (64, 256),
    hidden: int = 512,
    warmup: int = 10,
    repeats: int = 100,
    naive_repeats: int = 2,
    seed: int = 0,
    inputs: torch.Tensor | None = None,
    targets: torch.Tensor | None = None,
    device: torch.device | str = "cpu",
    on_repeat: Callable[[int, int], None] | None = None,
    architecture: str = "mlp",
    channels: tuple[int, int] = (8, 16),
    peers: bool = True,
) -> list[dict]:
    """Median time per step of each variant, per batch size (rows for `format_table`).

    architecture: "mlp" (784-`hidden`-10) or "cnn" (`channels`, see models.build_cnn).

    inputs/targets: real data (float32 N x 784, int64 labels) to draw batches
    from; by default, synthetic data from a seeded generator.
    naive_repeats=0 leaves the naive DBA out; peers=False leaves DBA's peers out.
    on_repeat(batch_size, repeat) is called after each round-robin repeat.
    """
    device = torch.device(device)
    rows = []
    for batch_size in batch_sizes:
        batches = _batches(batch_size, warmup + repeats, seed, inputs, targets, device)
        make_model = lambda: _model(architecture, hidden, channels, seed)  # noqa: E731
        steps = _steps(batch_size, make_model, device)
        if naive_repeats <= 0:
            del steps["naive"]
        if peers:
            pool_x, pool_y = torch.cat([x for x, _ in batches]), torch.cat([y for _, y in batches])
            for name, settings in peer_settings(batch_size).items():
                steps[name] = _peer_step(settings, batch_size, make_model().to(device), pool_x, pool_y)
        times: dict[str, list[float]] = {name: [] for name in steps}
        for round_ in range(warmup + repeats):
            x, y = batches[round_ % len(batches)]
            for name, step in steps.items():
                if name == "naive" and not warmup <= round_ < warmup + naive_repeats:
                    continue  # seconds per step: no warm-up, few repeats
                _synchronize(device)
                started = time.perf_counter()
                step(x, y)
                _synchronize(device)
                if round_ >= warmup:
                    times[name].append(time.perf_counter() - started)
            if on_repeat is not None and round_ >= warmup:
                on_repeat(batch_size, round_ - warmup)
        sgd = statistics.median(times["sgd"])
        for name, values in times.items():
            median = statistics.median(values)
            rows.append(
                {
                    "batch_size": batch_size,
                    "variant": name,
                    "label": VARIANTS[name],
                    "median_ms": 1e3 * median,
                    "ratio_to_sgd": median / sgd,
                    "repeats": len(values),
                    "times_ms": [1e3 * v for v in values],
                }
            )
    return rows


def format_table(rows: list[dict]) -> str:
    """A markdown table of `benchmark_steps` rows, with DBA's speed-up over the naive DBA."""
    table = markdown_table(
        ["batch", "step", "median ms", "x plain SGD", "runs"],
        [
            [str(row["batch_size"]), row["label"], f"{row['median_ms']:.3f}", f"{row['ratio_to_sgd']:.2f}x", str(row["repeats"])]
            for row in rows
        ],
        "rlrrr",
    )
    speedups = []
    for batch_size in dict.fromkeys(row["batch_size"] for row in rows):
        by_name = {row["variant"]: row for row in rows if row["batch_size"] == batch_size}
        if "dba" in by_name and "naive" in by_name:
            ratio = by_name["naive"]["median_ms"] / by_name["dba"]["median_ms"]
            speedups.append(f"batch {batch_size}: DBA is {ratio:.0f}x faster than the naive DBA")
    return "\n".join([table] + ([""] + speedups if speedups else []))


# --- the variants ---


def _steps(batch_size: int, make_model: Callable[[], nn.Module], device: torch.device) -> dict[str, Step]:
    config = DBAConfig(metric="variance", direction="minimize", min_size=max(1, batch_size // 2))
    models = {name: make_model().to(device) for name in VARIANTS}
    optimizers = {name: torch.optim.SGD(model.parameters(), lr=LEARNING_RATE) for name, model in models.items()}

    def sgd(x: torch.Tensor, y: torch.Tensor) -> None:
        optimizers["sgd"].zero_grad(set_to_none=True)
        F.cross_entropy(models["sgd"](x), y).backward()
        optimizers["sgd"].step()

    gram_only = DBA(models["gram"], optimizers["gram"], config)
    dba = DBA(models["dba"], optimizers["dba"], config)

    def naive(x: torch.Tensor, y: torch.Tensor) -> None:
        naive_dba_step(models["naive"], optimizers["naive"], config.min_size, x, y)

    return {"sgd": sgd, "gram": gram_only.layer_grams, "dba": dba.step, "naive": naive}


def _peer_step(settings: dict, batch_size: int, model: nn.Module, pool_x: torch.Tensor, pool_y: torch.Tensor) -> Step:
    """A peer's training step as the training loop takes it: its next batch from the pool (a new pass when one ends), then the step."""
    config = run_config(base="sgd", lr=LEARNING_RATE, batch_size=batch_size, epochs=1, **settings)
    stepper = Stepper(model, config)
    generator = torch.Generator().manual_seed(0)
    passes = {"batches": iter(())}

    def step(x: torch.Tensor, y: torch.Tensor) -> None:  # the bench's own batch is ignored: the peer draws its own
        batch = next(passes["batches"], None)
        if batch is None:
            passes["batches"] = iter(stepper.batches(pool_x, pool_y, batch_size, generator, 1))
            batch = next(passes["batches"])
        stepper(pool_x[batch], pool_y[batch], batch)

    return step


def naive_dba_step(model: nn.Module, optimizer: torch.optim.Optimizer, min_size: int, x, y) -> None:
    """DBA (variance, minimize) the straightforward way, for comparison only."""
    params = {name: p.detach() for name, p in model.named_parameters()}

    def sample_loss(p, xi, yi):
        return F.cross_entropy(functional_call(model, p, (xi.unsqueeze(0),)), yi.unsqueeze(0), reduction="sum")

    grads = vmap(grad(sample_loss), in_dims=(None, 0, 0))(params, x, y)
    for module_name, module in model.named_modules():
        if not isinstance(module, (nn.Linear, nn.Conv2d)):
            continue
        names = [f"{module_name}.{n}" for n, _ in module.named_parameters()]
        G = torch.cat([grads[name].flatten(start_dim=1) for name in names], dim=1)
        kept = _naive_greedy_variance(G, min_size)
        mean = G[kept].mean(dim=0)
        params = list(module.parameters())
        for p, values in zip(params, mean.split([p.numel() for p in params]), strict=True):
            p.grad = values.view_as(p).clone()
    optimizer.step()


def _naive_greedy_variance(G: torch.Tensor, min_size: int) -> torch.Tensor:
    """Greedy elimination, each round's candidate variances recomputed from the vectors G (B x P)."""
    kept = torch.ones(len(G), dtype=torch.bool, device=G.device)
    squares = torch.linalg.vector_norm(G, dim=1) ** 2  # per-sample constants
    current = squares.mean() - torch.linalg.vector_norm(G.mean(dim=0)) ** 2
    while int(kept.sum()) > min_size:
        m = int(kept.sum())
        total = kept.to(G.dtype) @ G  # the subset's gradient sum, from scratch
        # variance of S minus {k} for every k: mean squared norm minus squared norm of the mean
        mean_norms = (total @ total - 2 * (G @ total) + squares) / (m - 1) ** 2
        candidates = ((squares * kept).sum() - squares) / (m - 1) - mean_norms
        candidates[~kept] = torch.inf
        best = int(torch.argmin(candidates))
        if not candidates[best] < current:
            break
        current = candidates[best]
        kept[best] = False
    return kept


def _model(architecture: str, hidden: int, channels: tuple[int, int], seed: int) -> nn.Sequential:
    if architecture == "cnn":
        return build_cnn(tuple(channels), seed=seed)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return nn.Sequential(nn.Linear(784, hidden), nn.ReLU(), nn.Linear(hidden, 10))


def _batches(
    batch_size: int,
    count: int,
    seed: int,
    inputs: torch.Tensor | None,
    targets: torch.Tensor | None,
    device: torch.device,
) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Up to `count` distinct batches, from the data given or synthetic."""
    generator = torch.Generator().manual_seed(seed)
    if inputs is None:
        count = min(count, 16)  # enough variety; synthetic data need not be large
        x = torch.randn(count * batch_size, 784, generator=generator)
        y = torch.randint(0, 10, (count * batch_size,), generator=generator)
    else:
        if targets is None or len(inputs) != len(targets):
            raise ValueError("inputs and targets must be given together, with one label per input")
        if len(inputs) < batch_size:
            raise ValueError(f"need at least {batch_size} inputs for batch size {batch_size}, got {len(inputs)}")
        order = torch.randperm(len(inputs), generator=generator)
        count = min(count, len(inputs) // batch_size)
        x, y = inputs[order[: count * batch_size]], targets[order[: count * batch_size]]
    x, y = x.to(device, torch.float32), y.to(device)
    return [(x[i : i + batch_size], y[i : i + batch_size]) for i in range(0, count * batch_size, batch_size)]


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
