"""The environment variables dba reads, each named once (options, messages and readers use these names)."""

DATA_DIR = "DBA_DATA_DIR"  # --data-dir: another copy of the data
CACHE_DIR = "DBA_CACHE_DIR"  # dba's cache (verified data, numba's compiled search)
RECIPES_DIR = "DBA_RECIPES_DIR"  # a folder of recipes instead of the packaged ones
JOBS = "DBA_JOBS"  # --jobs
PACK = "DBA_PACK"  # --pack
RAY_ADDRESS = "DBA_RAY_ADDRESS"  # --ray
CHECKPOINT_SECONDS = "DBA_CHECKPOINT_SECONDS"  # seconds between a run's checkpoints (0: every epoch)
PROTOCOL = "DBA_PROTOCOL"  # another protocol declaration instead of dba_cli/protocol.yaml (scratch runs)
