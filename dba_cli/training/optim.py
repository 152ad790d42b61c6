"""One optimisation step: the base optimizers, their learning-rate schedule, and a DBA, peer or plain step behind the same call.

Adam and AdamW use the fused kernel (CPU and CUDA): about 1.4x faster per step here.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from ..seeding import derive_seed
from ..settings.run import RunConfig
from .importance import ImportanceSampling
from .online import OnlineBatchSelection
from .ordered import OrderedSelection
from .selection import Selection, uniform_batches

# DBA's peers (settings/methods.py): the method, and what chooses its batches and loss (training/selection.py).
SELECTIONS = {"ordered": OrderedSelection, "online": OnlineBatchSelection, "importance": ImportanceSampling}


def make_optimizer(params, config: RunConfig) -> torch.optim.Optimizer:
    """The config's optimizer (settings/run.py OPTIMIZERS) with its learning rate, weight decay and, for SGD, momentum.

    Adam's weight decay is L2 added to the gradient; AdamW's is decoupled from it.
    """
    if config.optimizer == "sgd":
        return torch.optim.SGD(params, lr=config.lr, momentum=config.momentum, nesterov=config.nesterov,
                               weight_decay=config.weight_decay)
    if config.optimizer == "adamw":
        return torch.optim.AdamW(params, lr=config.lr, weight_decay=config.weight_decay, fused=True)
    return torch.optim.Adam(params, lr=config.lr, weight_decay=config.weight_decay, fused=True)


def cosine_factor(step: int, total_steps: int) -> float:
    """The cosine schedule's multiple of the learning rate at step `step` (0-based) of `total_steps`: 1 down towards 0."""
    return 0.5 * (1.0 + math.cos(math.pi * min(step, total_steps) / max(1, total_steps)))


def make_schedule(optimizer: torch.optim.Optimizer, config: RunConfig, total_steps: int | None):
    """The config's learning-rate schedule over the whole run, stepped once per optimizer step (None: constant).

    LambdaLR sets each step's lr to lr x factor; the factor is 0.5 (1 + cos),
    and halving is exact in floating point, so that is exactly the formula's
    lr x 0.5 x (1 + cos(pi t / T)). Its position (t) is part of the
    Stepper's state, so a run resumed from a checkpoint continues it.
    """
    if config.schedule == "constant":
        return None
    if total_steps is None:
        raise ValueError(f"schedule {config.schedule} needs the run's total number of optimizer steps")
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: cosine_factor(step, total_steps))


def make_selection(config: RunConfig) -> Selection | None:
    """The run's peer selection (None for the plain optimizers and the DBA engine, which step on their own)."""
    kind = SELECTIONS.get(config.method)
    return None if kind is None else kind(getattr(config, config.method), config.epochs)


class Stepper:
    """One optimisation step on a mini-batch, and the optimizer (DBA, schedule) state a checkpoint needs.

    `total_steps` (epochs x steps per epoch) is what a cosine schedule decays
    over; the schedule steps after every optimizer step, DBA's included (DBA
    steps the same optimizer object).

    A peer of DBA (training/selection.py) chooses the batches (`batches`)
    and the loss differentiated; the DBA engine (`dba`, and `dba-random`,
    which keeps DBA's sizes with random samples) steps on its own.

    Calling it returns the batch's mean loss (a 0-dim tensor, left on the
    device to avoid a sync), for the DBA engine the kept subset size per
    layer, and how many samples the mean covers.
    """

    def __init__(self, model: nn.Module, config: RunConfig, total_steps: int | None = None) -> None:
        self.model = model
        self.optimizer = make_optimizer(model.parameters(), config)
        self.schedule = make_schedule(self.optimizer, config, total_steps)
        self.engine = None
        self.selection = make_selection(config)
        if config.dba is not None:
            from ..dba.engine import DBA

            composition = "random" if config.method == "dba-random" else "search"
            self.engine = DBA(model, self.optimizer, config.dba, composition=composition,
                              seed=derive_seed(config.seed, "composition"))

    def batches(self, inputs: torch.Tensor, targets: torch.Tensor, batch_size: int, generator: torch.Generator, epoch: int):
        """The epoch's mini-batches as index tensors: plain SGD's seeded permutation, or the peer's choice."""
        if self.selection is not None:
            return self.selection.batches(self.model, inputs, targets, batch_size, generator, epoch)
        return uniform_batches(len(targets), batch_size, generator, inputs.device)

    def __call__(
        self, inputs: torch.Tensor, targets: torch.Tensor, indices: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, dict[str, int] | None, int]:
        count = len(targets)
        if self.engine is not None:
            result = self.engine.step(inputs, targets)
            loss, kept = result.loss, result.kept
        elif self.selection is not None:
            self.optimizer.zero_grad(set_to_none=True)
            chosen = self.selection.loss(self.model, inputs, targets, indices)
            chosen.loss.backward()
            self.optimizer.step()
            loss, kept, count = chosen.reported, None, chosen.count
        else:
            self.optimizer.zero_grad(set_to_none=True)
            loss = F.cross_entropy(self.model(inputs), targets)
            loss.backward()
            self.optimizer.step()
            loss, kept = loss.detach(), None
        if self.schedule is not None:
            self.schedule.step()
        return loss, kept, count

    def state_dict(self) -> dict:
        state = {"dba": self.engine.state_dict()} if self.engine is not None else {"optimizer": self.optimizer.state_dict()}
        if self.schedule is not None:
            state["schedule"] = self.schedule.state_dict()
        if self.selection is not None:
            state["selection"] = self.selection.state_dict()
        return state

    def load_state_dict(self, state: dict) -> None:
        if self.engine is not None:
            self.engine.load_state_dict(state["dba"])
        else:
            self.optimizer.load_state_dict(state["optimizer"])
        if self.schedule is not None:
            self.schedule.load_state_dict(state["schedule"])
        if self.selection is not None:
            self.selection.load_state_dict(state["selection"])
