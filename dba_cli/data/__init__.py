"""The data: MNIST-format IDX data sets (`mnist`, needs torch and numpy) and training subsets (`subsets`).

What the command line needs before it loads anything lives here, free of torch.
"""

# The environment variable that points `--data-dir` at another copy of the data (`dba run --help` names it).
DATA_DIR_ENV = "DBA_DATA_DIR"

# The data sets a run can train on (a recipe's `dataset:`): both are 28x28 grey images of 10
# classes in the same IDX format, 60,000 for training and 10,000 for testing, so every
# subset, split and model works on either. MNIST ships inside the package; Fashion-MNIST
# does not (see `dba data fetch`).
DATASETS = ("mnist", "fashion-mnist")
