# Everything runs inside .venv; `make install` creates it.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
DBA := $(VENV)/bin/dba
# The torch build this project is developed and tested with (a local wheel on our machines).
TORCH_PINS ?= torch==2.14.1 torchvision==0.29.1
RESULTS ?= results
SMOKE_RESULTS ?= results/smoke
DEVICE ?= auto
RECIPES ?= mnist-1pct mnist-10-per-class mnist-full
SCARCE ?= mnist-1pct mnist-10-per-class
CONVERGE ?= mnist-full
# Beyond the paper: its settings on Fashion-MNIST, and mnist-1pct with a small CNN.
BEYOND ?= fashion-1pct fashion-10-per-class fashion-full mnist-1pct-cnn
BEYOND_SCARCE ?= fashion-1pct fashion-10-per-class mnist-1pct-cnn
BEYOND_ABLATE ?=
# Where selecting samples should matter: mnist-1pct with noisy labels (tuned on folds of the noisy subset) and with
# imbalanced classes (docs/noise.md); secondary recipes, K = 16 (the declaration's secondary_budget). mnist-1pct-sym20
# is left out for CPU time (NOISY="mnist-1pct-sym20 ..." adds it).
NOISY ?= mnist-1pct-sym50 mnist-1pct-pair45
IMBALANCED ?= mnist-1pct-imb10
# The declared sensitivity variant (dba tune --validation holdout: a 5,000-image split outside the subset), where it runs:
# mnist-10-per-class, whose 100 labelled images make the contrast with 5-fold validation sharpest (CPU time: not on the others).
HOLDOUT ?= mnist-10-per-class
# (empty: not run for the committed results, for CPU time; BEYOND_ABLATE=fashion-10-per-class runs its grid)
# Runs trained at once by each command (--jobs); empty: dba's default, the cores this process may use.
JOBS ?=
GRID_FLAGS = --results $(RESULTS) --device $(DEVICE) $(if $(JOBS),--jobs $(JOBS))

.PHONY: ablations choices sitting install test test-fast test-cuda gpu-check fuzz smoke paper-tables paper-tables-steps fair-comparison beyond-mnist noisy-labels fashion-data convergence foundation bench bench-pipeline bench-startup compute-estimate clean

install:  ## create .venv and install dba with its test tools and Ray (--ray; the tests start a local cluster)
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q $(TORCH_PINS)
	$(PY) -m pip install -q -e ".[test,ray]"
	@echo "installed: run 'make test', then '$(DBA) --help'"

TEST_WORKERS ?= 2
test:  ## the architecture's import contracts, then every test on TEST_WORKERS workers, idle ones taking queued tests from busy ones (CUDA tests skip themselves without a GPU)
	$(VENV)/bin/lint-imports --no-cache
	$(PY) -m pytest -q -n $(TEST_WORKERS) --dist worksteal

test-fast:  ## the tests without the slow ones (subprocesses, the Ray cluster, worker pools, grids through the CLI)
	$(PY) -m pytest -q -n $(TEST_WORKERS) -m "not slow"

test-cuda:  ## only the CUDA tests
	$(PY) -m pytest -q -m cuda

gpu-check:  ## on a machine with a GPU, in about 10 minutes: CUDA tests, step benchmarks, a timed reproduction with --jobs 1 and 4, packs of 1/8/32/128 runs, CUDA against CPU; figures in results/gpu/
	bash .ci/gpu-check $(RESULTS)/gpu

fuzz:  ## the property-based fuzz tests with 2000 random inputs each (the suite uses 150), and 666 + 50 mutated result files through dba table and dba plot
	DBA_FUZZ_EXAMPLES=2000 $(PY) -m pytest -q -s tests/test_fuzz.py tests/hardening/test_result_schema.py -k "fuzz or mutated"

smoke:  ## every recipe end to end with tiny epochs and one seed (CI); not a result
	@for recipe in $(RECIPES); do $(DBA) reproduce $$recipe --smoke --results $(SMOKE_RESULTS) --device $(DEVICE) || exit $$?; done
	$(DBA) tune mnist-10-per-class --smoke --results $(SMOKE_RESULTS) --device $(DEVICE)
	$(DBA) ablate mnist-10-per-class --smoke --results $(SMOKE_RESULTS) --device $(DEVICE)
	$(DBA) protocol mnist-10-per-class --smoke --results $(SMOKE_RESULTS) --device $(DEVICE)
	$(DBA) reproduce mnist-1pct-cnn --smoke --results $(SMOKE_RESULTS) --device $(DEVICE)
	$(DBA) reproduce mnist-1pct-sym50 --smoke --results $(SMOKE_RESULTS) --device $(DEVICE)
	$(DBA) reproduce mnist-1pct-imb10 --smoke --results $(SMOKE_RESULTS) --device $(DEVICE)
	@if $(DBA) data check fashion-mnist > /dev/null 2>&1; then \
		$(DBA) reproduce fashion-10-per-class --smoke --results $(SMOKE_RESULTS) --device $(DEVICE); \
	else echo "smoke: Fashion-MNIST is not on this machine; fashion-10-per-class skipped (make fashion-data)"; fi
	$(DBA) table --results $(SMOKE_RESULTS) > /dev/null

paper-tables: fashion-data  ## the full protocol: all recipes (incl. tuned methods), tuning, ablation, protocol diagnostics, beyond MNIST, tables, figures, cost (resumable; JOBS=N runs at once)
	@started=$$(date +%s); $(MAKE) --no-print-directory paper-tables-steps || exit $$?; \
	mkdir -p $(RESULTS); printf '{"started": %s, "finished": %s, "jobs": "%s", "machine": "%s, %s cores"}\n' \
		"$$started" "$$(date +%s)" "$(JOBS)" "$$(uname -m)" "$$(nproc)" >> $(RESULTS)/paper-tables-sittings.jsonl
	$(DBA) table --results $(RESULTS) > /dev/null

# One sitting of a regeneration spread over several: `make sitting STEP=ablations` (or choices, paper-tables-steps)
# runs that target and records its wall time in RESULTS/paper-tables-sittings.jsonl, as paper-tables does.
STEP ?= paper-tables-steps
sitting:  ## one sitting of a long regeneration: make STEP (ablations, choices, paper-tables-steps), its wall time recorded for results/cost.md
	@started=$$(date +%s); $(MAKE) --no-print-directory $(STEP); status=$$?; \
	mkdir -p $(RESULTS); printf '{"started": %s, "finished": %s, "jobs": "%s", "machine": "%s, %s cores", "step": "%s", "status": %s}\n' \
		"$$started" "$$(date +%s)" "$(JOBS)" "$$(uname -m)" "$$(nproc)" "$(STEP)" "$$status" >> $(RESULTS)/paper-tables-sittings.jsonl; \
	exit $$status

# The steps of paper-tables; each sitting's wall time goes to RESULTS/paper-tables-sittings.jsonl (results/cost.md reads it).
paper-tables-steps:
	@for recipe in $(RECIPES); do $(DBA) reproduce $$recipe $(GRID_FLAGS) || exit $$?; done
	@$(MAKE) --no-print-directory fair-comparison
	@$(MAKE) --no-print-directory beyond-mnist
	@$(MAKE) --no-print-directory noisy-labels
	@$(MAKE) --no-print-directory foundation
	@$(MAKE) --no-print-directory convergence
	$(DBA) table --results $(RESULTS) > /dev/null
	$(DBA) plot --results $(RESULTS)

fair-comparison:  ## on the data-scarce recipes, in the declaration's order: dba ablate (design seeds), dba tune (k-fold, then the holdout sensitivity variant on HOLDOUT), dba protocol (results/tune/, tune-holdout/, ablation.md, protocol.md)
	@for recipe in $(SCARCE); do \
		$(DBA) ablate $$recipe $(GRID_FLAGS) || exit $$?; \
		$(DBA) tune $$recipe $(GRID_FLAGS) || exit $$?; \
		if echo " $(HOLDOUT) " | grep -q " $$recipe "; then $(DBA) tune $$recipe --validation holdout $(GRID_FLAGS) || exit $$?; fi; \
		$(DBA) protocol $$recipe $(GRID_FLAGS) || exit $$?; \
	done

fashion-data:  ## Fashion-MNIST where dba finds it: already here (e.g. Debian's dataset-fashion-mnist), else dba data fetch (needs internet)
	@$(DBA) data check fashion-mnist > /dev/null 2>&1 || $(DBA) data fetch fashion-mnist

beyond-mnist: fashion-data  ## the paper's protocol on Fashion-MNIST (MLP) and on mnist-1pct with a CNN: reproduce, tune, protocol (results/tune/, protocol.md); BEYOND_ABLATE adds ablations
	@for recipe in $(BEYOND); do $(DBA) reproduce $$recipe $(GRID_FLAGS) || exit $$?; done
	@for recipe in $(BEYOND_SCARCE); do \
		$(DBA) tune $$recipe $(GRID_FLAGS) || exit $$?; \
		$(DBA) protocol $$recipe $(GRID_FLAGS) || exit $$?; \
	done
	@for recipe in $(BEYOND_ABLATE); do $(DBA) ablate $$recipe $(GRID_FLAGS) || exit $$?; done

noisy-labels:  ## mnist-1pct with label noise and with imbalanced classes (tune on folds of the noisy or long-tailed subset): every family, secondary comparisons
	@for recipe in $(NOISY) $(IMBALANCED); do \
		$(DBA) reproduce $$recipe $(GRID_FLAGS) || exit $$?; \
		$(DBA) tune $$recipe $(GRID_FLAGS) || exit $$?; \
	done

# A regeneration in the declaration's order (docs/protocol.md#order-of-a-regeneration): `make ablations`, then DBA's
# search rules set from results/ablation.md, then `make choices`, then each chosen.yaml pasted into its recipe, then
# `make paper-tables` (which finds every tuning run done and trains the reported seeds).
ablations:  ## step 1 of a regeneration: dba ablate on the data-scarce recipes (design seeds; results/ablation.md)
	@for recipe in $(SCARCE) $(BEYOND_ABLATE); do $(DBA) ablate $$recipe $(GRID_FLAGS) || exit $$?; done

choices:  ## step 2: every tuned recipe's candidates and chosen.yaml (dba tune --choose-only), nothing on the reported seeds
	@for recipe in $(SCARCE) $(BEYOND_SCARCE) $(NOISY) $(IMBALANCED); do \
		$(DBA) tune $$recipe --choose-only $(GRID_FLAGS) || exit $$?; \
	done

convergence:  ## dba converge: time to a validation target on full MNIST, every method tuned for it (results/convergence/; CONVERGE="mnist-full fashion-full" adds Fashion-MNIST)
	@for recipe in $(CONVERGE); do $(DBA) converge $$recipe $(GRID_FLAGS) || exit $$?; done

foundation:  ## the README's first SGD/Adam baselines (seed 0, batch 32, 200 epochs, default lr) into RESULTS/foundation/
	@mkdir -p $(RESULTS)/foundation
	@for data in 1pct 10-per-class; do for method in sgd adam; do \
		test -f $(RESULTS)/foundation/$$data-$$method.json || \
		$(DBA) run --data $$data --method $$method --epochs 200 --batch-size 32 --seed 0 --device $(DEVICE) \
			--output $(RESULTS)/foundation/$$data-$$method.json || exit $$?; \
	done; done

bench:  ## DBA step timing against plain SGD and a naive DBA
	$(DBA) bench step

bench-pipeline:  ## one epoch of full-MNIST SGD: our tensor pipeline vs torchvision + DataLoader
	$(DBA) bench pipeline

bench-startup:  ## --jobs 2 against --jobs 1 on a 6-run, 60-epoch grid, alternated in one sitting (docs/scaling.md#start-up)
	$(PY) -m tests.startup_ratio

compute-estimate:  ## runs and CPU-core hours the confirmatory regeneration needs, from the committed runs' recorded seconds (docs/confirmatory-compute.md)
	$(PY) tests/confirmatory_compute.py --results $(RESULTS)

clean:
	rm -rf build dist *.egg-info .pytest_cache $(SMOKE_RESULTS)
