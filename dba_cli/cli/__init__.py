"""The `dba` command line: thin commands that parse options and call the library.

`app` registers the commands: `train_one` (dba run, its options generated from
the run settings), `grids` (reproduce, tune, ablate, protocol, converge, all
taking the shared grid options of `options`), `other_commands` (recipes,
table, plot, data, bench). `console` is the error policy, `display` and `eta`
the progress display. Help, `recipes list` and `table` answer without loading
torch or numba: what trains is imported inside the command that needs it.
"""

from .app import app, main

__all__ = ["app", "main"]
