"""Training one run: the loop (`train`), its optimizers and DBA step (`optim`), evaluation (`evaluate`),
checkpoints, devices and threads, provenance, and the code version that identifies the training code."""
