"""Packed training: many small runs of one shape trained as one batched computation, each exactly as it trains alone.

A tuning grid is thousands of tiny trainings (a 784-512-10 MLP on 100 to 600
images); alone, each step pays per-operation overhead on small tensors that
dwarfs the arithmetic. Here P runs that share a shape (settings/packing.py)
keep their parameters stacked, [P, out, in], and every step is a handful of
batched products (`torch.baddbmm`, `torch.bmm`) over the whole pack.

Each run is still its own: its initial weights come from its own seed
(`build_model`), its subset, labels and validation split from its own config
(`train.draw_split`), its mini-batch order from its own generator, and its
optimizer (SGD, Adam or AdamW, with its own learning rate, momentum, weight
decay and schedule) has its own state. Written-out batched products rather
than `torch.func.vmap`: every operation here is chosen to compute, for each
run's slice, the same floating-point operations in the same order as the run's
own `train()` does, so a packed run is bit-identical to the run alone
(tests/test_packed.py checks it, losses, accuracies and weights, on this CPU):

- the linear layers' forward is `baddbmm` (each slice: the run's `addmm`), and
  their backward is written out (`packed_model.PackedLinear`) as autograd computes it for
  `F.linear`: grad_W = grad^T x, grad_x = grad W, grad_b = grad summed over the batch;
- the loss is differentiated per sample (mean over each run's batch), and the
  loss a run reports is its own `F.nll_loss`, one small call per run, because
  cross-entropy's mean sums in its own (cascaded) order;
- SGD's per-run scalars enter through `addcmul` with a per-run tensor, which
  rounds as `add(..., alpha=)` does (one fused multiply-add); Adam and AdamW
  call the fused kernel `torch.optim.Adam(fused=True)` calls, on each run's
  slices, one call per group of runs with equal hyperparameters.

Evaluation is packed too: each test chunk goes through every run's weights at
once, and each run's loss is reduced over its own logits as `evaluate` does.

A packed run keeps no checkpoint: a pack is killed whole and its runs rerun
(packs are for small runs, seconds each; settings/packing.py). A run that
diverges stops recording at that epoch, as alone, while the rest of its pack
trains on.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ..data.datasets import Dataset
from ..models import build_model
from ..seeding import derive_seed
from ..settings.packing import pack_key
from ..settings.run import RunConfig
from .devices import synchronize
from .evaluate import EVAL_CHUNK, accuracy_per_class, loss_and_accuracy
from .optim import cosine_factor
from .packed_dba import DBAStep
from .packed_model import PackedMLP
from .ordered import kept_count, kept_fraction
from .selection import uniform_batches
from .train import EpochRecord, RunResult, check_dataset, kept_summary, label_records, new_result, prepare_data


def broadcast(per_run: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """A tensor of one value per run ([P]) viewed to broadcast over a stacked parameter like `like` ([P, 1, ...])."""
    return per_run.view(-1, *([1] * (like.dim() - 1)))


class PackedOptimizer:
    """Each run's own optimizer (settings/run.py OPTIMIZERS) over the stacked parameters, and its lr schedule.

    The learning rate of run p at step t is its lr times `cosine_factor(t, T)`
    with a cosine schedule, computed as `LambdaLR` computes it (in Python
    floats), so every run's step is its alone step (see the module docstring).
    """

    def __init__(self, params: list[torch.Tensor], configs: Sequence[RunConfig], total_steps: int) -> None:
        self.params = params
        self.configs = list(configs)
        self.total_steps = total_steps
        self.step_count = 0
        self.optimizer = configs[0].optimizer  # one per pack: part of its key
        if self.optimizer == "sgd":  # the per-run scalars that do not change, as tensors shaped for each parameter
            self.momentum_buffers: list[torch.Tensor | None] = [None] * len(params)
            self.weight_decay = self._per_param([c.weight_decay for c in configs]) if any(c.weight_decay for c in configs) else None
            self.momentum = self._per_param([c.momentum for c in configs]) if configs[0].momentum != 0 else None
        else:
            self.exp_avgs = [torch.zeros_like(p) for p in params]
            self.exp_avg_sqs = [torch.zeros_like(p) for p in params]
            step_dtype = torch.float32  # what torch.optim's fused Adam keeps its step counts in
            self.steps = [[torch.zeros((), dtype=step_dtype, device=p.device) for p in params] for _ in configs]
            self.groups = self._adam_groups()

    def _per_param(self, values: list[float]) -> list[torch.Tensor]:
        """One float per run, as a tensor that broadcasts over each parameter (`broadcast`)."""
        per_run = torch.tensor(values, dtype=self.params[0].dtype, device=self.params[0].device)
        return [broadcast(per_run, param) for param in self.params]

    def _adam_groups(self) -> list[list[int]]:
        """Runs with equal Adam hyperparameters (and schedule), which one fused call may step together."""
        groups: dict[tuple, list[int]] = {}
        for p, config in enumerate(self.configs):
            groups.setdefault((config.lr, config.weight_decay, config.schedule), []).append(p)
        return list(groups.values())

    def lr(self, config: RunConfig) -> float:
        if config.schedule == "constant":
            return config.lr
        return config.lr * cosine_factor(self.step_count, self.total_steps)

    def step(self) -> None:
        if self.optimizer == "sgd":
            self._sgd_step()
        else:
            self._adam_step()
        self.step_count += 1

    @torch.no_grad()
    def _sgd_step(self) -> None:
        """torch.optim.SGD's single-tensor step (its CPU default), each scalar a per-run tensor."""
        neg_lr = torch.tensor([-self.lr(c) for c in self.configs], dtype=self.params[0].dtype, device=self.params[0].device)
        for i, param in enumerate(self.params):
            grad = param.grad
            if self.weight_decay is not None:
                grad = torch.addcmul(grad, param, self.weight_decay[i])
            if self.momentum is not None:  # the key holds whether momentum is used, and Nesterov
                buf = self.momentum_buffers[i]
                if buf is None:
                    buf = self.momentum_buffers[i] = grad.detach().clone()
                else:
                    buf.mul_(self.momentum[i]).add_(grad)
                grad = torch.addcmul(grad, buf, self.momentum[i]) if self.configs[0].nesterov else buf
            param.addcmul_(grad, broadcast(neg_lr, param))

    @torch.no_grad()
    def _adam_step(self) -> None:
        """torch.optim.Adam(fused=True)'s (and AdamW's) step: the same kernel on each run's slices, a call per group."""
        kernel = torch._fused_adamw_ if self.optimizer == "adamw" else torch._fused_adam_
        for group in self.groups:
            config = self.configs[group[0]]
            steps = [step for p in group for step in self.steps[p]]
            torch._foreach_add_(steps, 1)
            kernel(
                [param[p] for p in group for param in self.params],
                [param.grad[p] for p in group for param in self.params],
                [state[p] for p in group for state in self.exp_avgs],
                [state[p] for p in group for state in self.exp_avg_sqs],
                [], steps, amsgrad=False, lr=self.lr(config), beta1=0.9, beta2=0.999,
                weight_decay=config.weight_decay, eps=1e-8, maximize=False, grad_scale=None, found_inf=None,
            )


@dataclass
class PackData:
    """The pack's training subsets, stacked ([P, N, ...]), its shared test set, and its validation splits."""

    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    x_val: torch.Tensor | None
    y_val: torch.Tensor | None


def stack_data(datas) -> PackData:
    with_val = datas[0].x_val is not None
    return PackData(
        x_train=torch.stack([d.x_train for d in datas]),
        y_train=torch.stack([d.y_train for d in datas]),
        x_test=datas[0].x_test,
        y_test=datas[0].y_test,
        x_val=torch.stack([d.x_val for d in datas]) if with_val else None,
        y_val=torch.stack([d.y_val for d in datas]) if with_val else None,
    )


@torch.inference_mode()
def packed_logits(model: PackedMLP, x: torch.Tensor, chunk: int = EVAL_CHUNK) -> torch.Tensor:
    """Every run's logits on a set shared by the pack ([N, ...]) or its own ([P, N, ...]), in `evaluate`'s chunks."""
    parts = []
    count = len(model.weights[0])
    for start in range(0, x.shape[-2], chunk):
        part = x[..., start : start + chunk, :]
        parts.append(model(part.expand(count, *part.shape) if part.dim() == 2 else part))
    return torch.cat(parts, dim=1)


class PlainStep:
    """SGD, Adam, AdamW: each run's gradient of its mean loss over its batch."""

    def __init__(self, configs: Sequence[RunConfig], model: nn.Module) -> None:
        self.count = len(configs)

    def __call__(self, model: PackedMLP, inputs: torch.Tensor, targets: torch.Tensor, epoch: int):
        log_probs = F.log_softmax(model(inputs), dim=-1)
        losses = F.nll_loss(log_probs.flatten(0, 1), targets.flatten(), reduction="none").view_as(targets)
        losses.mean(dim=1).sum().backward()
        with torch.no_grad():  # each run's loss as F.cross_entropy reduces it alone (its own summation order)
            reported = torch.stack([F.nll_loss(log_probs[p], targets[p]) for p in range(self.count)])
        return reported, None


class OrderedStep:
    """Ordered SGD and small-loss (training/ordered.py): each run's mean loss over its batch's q highest or lowest losses.

    The kept losses are weighted 1/q and the rest 0, the gradient the run's own
    `losses[chosen].mean()` gives; q and the choice are each run's own.
    """

    def __init__(self, configs: Sequence[RunConfig], model: nn.Module) -> None:
        self.settings = [config.ordered for config in configs]

    def __call__(self, model: PackedMLP, inputs: torch.Tensor, targets: torch.Tensor, epoch: int):
        logits = model(inputs)
        losses = F.cross_entropy(logits.flatten(0, 1), targets.flatten(), reduction="none").view_as(targets)
        detached = losses.detach()
        weights = torch.zeros_like(detached)
        batch = targets.shape[1]
        for p, settings in enumerate(self.settings):
            q = kept_count(batch, kept_fraction(settings.fraction, settings.ramp_epochs, epoch))
            chosen = torch.topk(detached[p], q, largest=settings.keep == "largest", sorted=False).indices
            weights[p, chosen] = torch.ones((), device=weights.device) / q  # as mean's backward divides
        (losses * weights).sum().backward()
        return detached.mean(dim=1), None


# Each packed method's step (settings/packing.py PACKED_METHODS names the same methods; tests/test_packed.py checks it).
PACKED_STEPS = {"sgd": PlainStep, "adam": PlainStep, "adamw": PlainStep, "ordered": OrderedStep, "dba": DBAStep, "dba-random": DBAStep}


def make_step(configs: Sequence[RunConfig], model: nn.Module):
    """The pack's step for its method (settings/packing.py PACKED_METHODS); `model` is one run's, for its layer names."""
    method = configs[0].method
    if method not in PACKED_STEPS:
        raise ValueError(f"method {method!r} has no packed step (settings/packing.py PACKED_METHODS lists it by mistake)")
    return PACKED_STEPS[method](configs, model)


def check_pack(configs: Sequence[RunConfig]) -> None:
    keys = {pack_key(config) for config in configs}
    if None in keys or len(keys) != 1:
        raise ValueError("a pack holds runs of one shape only (settings/packing.py pack_key)")


def train_pack(
    configs: Sequence[RunConfig],
    dataset: Dataset,
    device: torch.device,
    on_epoch: Callable[[int, EpochRecord], None] | None = None,
    evaluate_at: Sequence[Collection[int] | None] | None = None,
    models_out: list | None = None,
) -> list[RunResult]:
    """Train the runs `configs` together (one shape: `check_pack`); each result is what `train` gives it alone.

    `evaluate_at[p]` is run p's evaluation schedule as `train` takes it;
    `on_epoch(p, record)` gets each run's epoch records as they end;
    `models_out` receives each run's trained model (a run that diverged
    trains on with its pack: its weights are not those it stopped with alone). A run's
    `train_seconds` and `eval_seconds` are its share of the pack's (the pack's
    time over its runs).
    """
    check_pack(configs)
    for config in configs:
        check_dataset(dataset, config)
    count = len(configs)
    schedules = [None if s is None else frozenset(s) for s in (evaluate_at or [None] * count)]
    datas = [prepare_data(dataset, configs[0], device)]
    test = (datas[0].x_test, datas[0].y_test)  # one copy of the test set for the whole pack
    datas += [prepare_data(dataset, config, device, test) for config in configs[1:]]
    if len({split_sizes(d) for d in datas}) > 1:  # folds of unequal size: each size trains as its own pack
        return split_by_size(configs, datas, dataset, device, on_epoch, schedules, models_out)
    data = stack_data(datas)
    models = [build_model(c.architecture, c.hidden, c.channels, c.activation, c.seed).to(device) for c in configs]
    model = PackedMLP(models)
    first = configs[0]
    n = data.x_train.shape[1]
    steps_per_epoch = math.ceil(n / first.batch_size)
    optimizer = PackedOptimizer(model.parameters(), configs, first.epochs * steps_per_epoch)
    step = make_step(configs, models[0])
    generators = [torch.Generator().manual_seed(derive_seed(c.seed, "batches")) for c in configs]
    results = [new_result(c, dataset, d, device) for c, d in zip(configs, datas)]
    for result, config, d in zip(results, configs, datas):
        label_records(result, dataset, config, d)
        result.pack_size = count if count > 1 else None
    active = list(range(count))  # runs still recording (a diverged run stops, as alone)
    rows = torch.arange(count, device=device).unsqueeze(1)
    for epoch in range(1, first.epochs + 1):
        started = time.perf_counter()
        total = torch.zeros(count, device=device)
        kept_sizes: list[dict[str, list[int]]] = [{} for _ in range(count)]
        for batch in zip(*(uniform_batches(n, first.batch_size, g, device) for g in generators)):
            index = torch.stack(batch)
            for param in model.parameters():
                param.grad = None
            reported, kept = step(model, data.x_train[rows, index], data.y_train[rows, index], epoch)
            optimizer.step()
            total += reported * len(batch[0])
            for sizes, layers in zip(kept_sizes, kept or ()):
                for layer, size in layers.items():
                    sizes.setdefault(layer, []).append(size)
        synchronize(device)
        trained = time.perf_counter()
        train_losses = [value / n for value in total.tolist()]
        due = [p for p in active if epoch == first.epochs or not math.isfinite(train_losses[p])
               or schedules[p] is None or epoch in schedules[p]]
        evaluated = evaluate_runs(model, data, due) if due else {}
        eval_seconds = (time.perf_counter() - trained) / max(1, len(due))  # shared by the runs evaluated
        for p in list(active):
            test_loss, test_accuracy, val_loss, val_accuracy = evaluated.get(p, (None, None, None, None))
            record = EpochRecord(
                epoch, train_losses[p], test_loss, test_accuracy, (trained - started) / count,
                eval_seconds if p in evaluated else 0.0, kept_summary(kept_sizes[p]), val_loss, val_accuracy,
            )
            results[p].history.append(record)
            if on_epoch is not None:
                on_epoch(p, record)
            if not math.isfinite(train_losses[p]):
                results[p].diverged_at_epoch = epoch
                active.remove(p)
        if not active:  # every run diverged: nothing left to record
            break
    imbalanced = [p for p in range(count) if configs[p].imbalance != 1.0 and results[p].diverged_at_epoch is None]
    if imbalanced:
        logits = packed_logits(model, data.x_test)
        for p in imbalanced:
            results[p].final_class_accuracy = accuracy_per_class(logits[p].argmax(dim=1), data.y_test)
    if models_out is not None:
        model.write_back(models)
        models_out.extend(models)
    return results


def evaluate_runs(model: PackedMLP, data: PackData, runs: list[int]) -> dict[int, tuple]:
    """(test loss, test accuracy, validation loss, validation accuracy) of each run in `runs`."""
    test = packed_logits(model, data.x_test)
    val = packed_logits(model, data.x_val) if data.x_val is not None else None
    out = {}
    for p in runs:
        test_loss, test_accuracy = loss_and_accuracy(test[p], data.y_test)
        val_loss = val_accuracy = None
        if val is not None:
            val_loss, val_accuracy = loss_and_accuracy(val[p], data.y_val[p])
        out[p] = (test_loss, test_accuracy, val_loss, val_accuracy)
    return out


def split_sizes(data) -> tuple[int, int | None]:
    """(training images, validation images or None) of one run's data: runs of one pack need the same."""
    return len(data.indices), None if data.x_val is None else len(data.x_val)


def split_by_size(configs, datas, dataset, device, on_epoch, schedules, models_out) -> list[RunResult]:
    """Train runs whose subsets differ in size (k folds of an uneven subset) as one pack per size, in order."""
    by_size: dict[tuple, list[int]] = {}
    for p, d in enumerate(datas):
        by_size.setdefault(split_sizes(d), []).append(p)
    results: list[RunResult | None] = [None] * len(configs)
    outs: dict[int, nn.Module] = {}
    for members in by_size.values():
        forward = None if on_epoch is None else (lambda q, record, members=members: on_epoch(members[q], record))
        trained_models: list | None = [] if models_out is not None else None
        part = train_pack([configs[p] for p in members], dataset, device, forward, [schedules[p] for p in members], trained_models)
        for q, p in enumerate(members):
            results[p] = part[q]
            if trained_models is not None:
                outs[p] = trained_models[q]
    if models_out is not None:
        models_out.extend(outs[p] for p in range(len(configs)))
    return results
