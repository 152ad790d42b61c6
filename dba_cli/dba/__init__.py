"""Dynamic Batch Adaptation (arXiv:2208.00815): per layer, train on the subset of
the mini-batch whose per-sample gradients best improve a metric such as their
variance. The specification is docs/dba-method.md; `engine.DBA.step` is the
whole step, read top to bottom.

`DBA` and `StepResult` (the engine: torch, numba) are imported on first use, so
that reading `DBAConfig` and its choices (for help, recipes, tables) stays light.
"""

from .config import DEFAULT_DIRECTION, DIRECTIONS, METRICS, REDUCTIONS, DBAConfig

__all__ = ["DBA", "DBAConfig", "DEFAULT_DIRECTION", "DIRECTIONS", "METRICS", "REDUCTIONS", "StepResult"]

_ENGINE = ("DBA", "StepResult")


def __getattr__(name: str):
    if name in _ENGINE:
        from . import engine

        return getattr(engine, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_ENGINE))
