"""Which runs may train together as one pack (training/packed.py), and how many per pack: torch-free, for planning.

Runs share a pack when they compute the same shapes through the same code:
the model (an MLP of the same widths and activation), the batch size, the
epochs, the data set and subset size, and the optimizer with the structure of
its step (momentum or not, Nesterov or not). Learning rate, momentum value,
weight decay, schedule, seed, label noise and validation split are each run's
own. Only small runs pack: a pack keeps no checkpoint (killed, its runs start
over), so runs on more than `MAX_PACKED_IMAGES` training images train alone,
checkpointed as always.

Packed: plain SGD, Adam and AdamW, Ordered SGD and small-loss, DBA and
its random-composition control (`PACKED_METHODS`, each with its step in
training/packed.py). Not packed (they train alone, as before): the CNN, and
online batch selection and importance sampling, whose batches are drawn from
each run's own latest losses; docs/packing.md says why.
"""

from __future__ import annotations

from .run import RunConfig

PACKED_METHODS = ("sgd", "adam", "adamw", "ordered", "dba", "dba-random")  # training/packed.py make_step
MAX_PACKED_IMAGES = 10_000  # the paper's small-data recipes train on 100 to 600 images; full MNIST's 60,000 train alone
MAX_PACK = 1024  # the bound of --pack
DEFAULT_PACK = 16  # runs per pack on a CPU unless --pack says otherwise (docs/packing.md)
DEFAULT_GPU_PACK = 64  # on a GPU, where one small run leaves the device almost idle
# Packed by default on a CPU: the methods whose packed runs were measured faster there (docs/packing.md). Plain
# SGD, Adam, AdamW and Ordered SGD were not: their small products are already compute-bound, and a pack's
# weights outgrow the cache; DBA's step has more small operations for a pack to share.
CPU_PACKED_METHODS = ("dba", "dba-random")


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


def pack_groups(configs: list[RunConfig], pack: int, methods: tuple[str, ...] = PACKED_METHODS) -> list[list[int]]:
    """The runs (by position) cut into packs of at most `pack` runs of one key; every other run alone.

    Runs of one key are split into as few packs as `pack` allows, of sizes
    that differ by at most one (21 runs at --pack 16: 11 and 10, not 16 and 5),
    so that packs in flight at once take about as long. A pack stands where
    its first run is in the plan, so runs still train roughly in plan order.
    Only runs of `methods` pack (`default_methods`).
    """
    by_key: dict[tuple, list[int]] = {}
    units: list[tuple[int, list[int]]] = []
    for position, config in enumerate(configs):
        key = pack_key(config) if pack > 1 and config.method in methods else None
        if key is None:
            units.append((position, [position]))
        else:
            by_key.setdefault(key, []).append(position)
    for members in by_key.values():
        count = -(-len(members) // pack)
        size, extra = divmod(len(members), count)
        start = 0
        for k in range(count):
            end = start + size + (1 if k < extra else 0)
            units.append((members[start], members[start:end]))
            start = end
    return [members for _, members in sorted(units)]


def default_methods(device_type: str) -> tuple[str, ...]:
    """The methods packed without --pack: on a CPU only those measured faster packed (docs/packing.md), on a GPU all."""
    return PACKED_METHODS if device_type != "cpu" else CPU_PACKED_METHODS


def default_pack(configs: list[RunConfig], slots: int, device_type: str = "cpu") -> int:
    """Runs per pack without --pack: `DEFAULT_PACK` (on a GPU `DEFAULT_GPU_PACK`), never so large that fewer
    packs than `slots` (runs in flight) are left to fill them."""
    methods = default_methods(device_type)
    counts: dict[tuple, int] = {}
    for config in configs:
        key = pack_key(config) if config.method in methods else None
        if key is not None:
            counts[key] = counts.get(key, 0) + 1
    if not counts:
        return 1
    largest = max(counts.values())
    ceiling = DEFAULT_PACK if device_type == "cpu" else DEFAULT_GPU_PACK
    return max(1, min(ceiling, -(-largest // max(1, slots))))
