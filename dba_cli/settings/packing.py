"""Which runs may train together as one pack (training/packed.py), and how many per pack: torch-free, for planning.

Runs share a pack when they compute the same shapes through the same code:
the model (an MLP of the same widths and activation), the batch size, the
epochs, the data set and subset size, and the optimizer with the structure of
its step (momentum or not, Nesterov or not). Learning rate, momentum value,
weight decay, schedule, seed, label noise and validation split are each run's
own. Only small runs pack: a pack keeps no checkpoint (killed, its runs start
over), so runs on more than `MAX_PACKED_IMAGES` training images train alone,
checkpointed as always.

Not packed (they train alone, as before): the CNN, DBA and its random-composition
control, and the peers. Each of those computes per-sample or per-layer work
whose structure differs between runs of one grid (the peers' batches depend on
each run's own losses; DBA's kept subsets differ per run and per layer), so
it would need its own batched engine; docs/packing.md says what they would take.
"""

from __future__ import annotations

from .run import RunConfig

PACKED_METHODS = ("sgd", "adam", "adamw", "ordered", "dba", "dba-random")  # training/packed.py make_step
MAX_PACKED_IMAGES = 10_000  # the paper's small-data recipes train on 100 to 600 images; full MNIST's 60,000 train alone
MAX_PACK = 1024  # the bound of --pack
DEFAULT_PACK = 16  # runs per pack unless --pack says otherwise (docs/packing.md: the measured sweet spot on one CPU thread)


def pack_key(config: RunConfig) -> tuple | None:
    """What runs of one pack share (None: this run trains alone)."""
    size = config.subset_size
    if (
        config.method not in PACKED_METHODS
        or config.architecture != "mlp"
        or config.resample == "every_epoch"
        or size is None
        or size > MAX_PACKED_IMAGES
    ):
        return None
    return (
        config.dataset, config.data, config.imbalance, size, config.folds, config.validation_size, tuple(config.hidden),
        config.activation, config.batch_size, config.epochs, config.method, config.optimizer, config.momentum != 0,
        config.momentum != 0 and config.nesterov,
    )


def pack_groups(configs: list[RunConfig], pack: int) -> list[list[int]]:
    """The runs (by position) cut into packs of at most `pack` of one key, in plan order; every other run alone.

    A pack starts where its first run is in the plan, so runs still train
    roughly in plan order.
    """
    packs: list[list[int]] = []
    open_packs: dict[tuple, list[int]] = {}
    for position, config in enumerate(configs):
        key = pack_key(config) if pack > 1 else None
        if key is None:
            packs.append([position])
            continue
        members = open_packs.get(key)
        if members is None or len(members) >= pack:
            members = open_packs[key] = []
            packs.append(members)
        members.append(position)
    return packs


def default_pack(configs: list[RunConfig], slots: int) -> int:
    """`DEFAULT_PACK`, but never so large that fewer packs than `slots` (runs in flight) are left to fill them."""
    counts: dict[tuple, int] = {}
    for config in configs:
        key = pack_key(config)
        if key is not None:
            counts[key] = counts.get(key, 0) + 1
    if not counts:
        return 1
    largest = max(counts.values())
    return max(1, min(DEFAULT_PACK, -(-largest // max(1, slots))))
