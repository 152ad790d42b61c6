"""The data: MNIST files (`mnist`, needs torch and numpy) and training subsets (`subsets`).

What the command line needs before it loads anything lives here, free of torch.
"""

# The environment variable that points `--data-dir` at another copy of MNIST (`dba run --help` names it).
DATA_DIR_ENV = "DBA_DATA_DIR"
