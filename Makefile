# The suite's commands. Every target that runs something first runs the idempotent bootstrap
# (engine, Compose, images, virtualenv), which takes well under a second when all is there.
SHELL := /bin/bash
PY := .venv/bin/python
PYTEST := .venv/bin/pytest
ARGS ?=
# The engine's tests run in this many xdist workers: most of their time is spent waiting on
# subprocesses and Docker, not on the 2 cores (WORKERS=0: one process, no xdist)
WORKERS ?= 3
XDIST := $(if $(filter 0,$(WORKERS)),,-n $(WORKERS) --dist worksteal)

.PHONY: bootstrap lint unit drills test nightly engine-nightly full cleanup lock lock-host lock-image \
	recordings

bootstrap:
	@bash scripts/bootstrap.sh

lint: bootstrap
	.venv/bin/ruff check .
	.venv/bin/ruff format --check .
	.venv/bin/mypy
	.venv/bin/zizmor --offline --quiet .github/workflows/
	.venv/bin/check-jsonschema --builtin-schema vendor.github-workflows .github/workflows/*.yml

unit: bootstrap
	$(PYTEST) tests/ -q $(XDIST) $(ARGS)

# The user's command: the quick drills, with JUnit and the HTML drill report in reports/.
drills: bootstrap
	$(PYTEST) drills/ -m quick --junitxml=reports/junit-quick.xml $(ARGS)

full: bootstrap
	$(PYTEST) drills/ -m full --junitxml=reports/junit-full.xml $(ARGS)

nightly: bootstrap
	$(PYTEST) drills/ -m nightly --junitxml=reports/junit-nightly.xml $(ARGS)

# The suite's own heavy tests (interruptions, concurrent runs, decoys, every fault injector).
engine-nightly: bootstrap
	$(PYTEST) tests/ -m nightly --junitxml=reports/junit-engine-nightly.xml $(ARGS)

# What CI runs: lint, the engine's tests, then the quick drills (Docker required, never skipped).
test: lint
	$(PYTEST) tests/ -q -m "not nightly" $(XDIST) --durations=15 $(ARGS)
	$(PYTEST) drills/ -m quick --drill-require-docker --junitxml=reports/junit-quick.xml $(ARGS)

cleanup: bootstrap
	$(PY) -m rollback_drill.cli cleanup

# Refresh the recordings tests/test_replay.py replays (issue 19): one drill per trigger, the
# matrix's bands and just-below twins, and the healthy deployment, on the reference target
# (about an hour on 2 cores; Docker required). Only the drills that passed are copied (over
# the committed ones; a drill that failed keeps its previous recording).
RECORD_DIR ?= reports/recordings
recordings: bootstrap
	rm -rf $(RECORD_DIR)
	-$(PYTEST) drills/test_triggers.py drills/test_matrix_bands.py \
		drills/test_healthy.py::test_healthy_hybrid_deployment_fires_nothing \
		--drill-require-docker --drill-report-dir=$(RECORD_DIR) \
		--junitxml=$(RECORD_DIR)/junit.xml $(ARGS)
	$(PY) -m rollback_drill.recording $(RECORD_DIR)/junit.xml $(RECORD_DIR) tests/data/recordings
	$(PYTEST) tests/test_replay.py -q

# Refresh both locks (after editing requirements.txt, pyproject.toml's dependencies or
# compose/app/requirements.in); bootstrap reinstalls .venv when requirements.lock changes.
lock: lock-host lock-image

# The host environment: pyproject.toml's dependencies and every extra, at requirements.txt's
# pins, with every transitive package and its hashes, for any platform on Python >= 3.11.
lock-host:
	.venv/bin/uv pip compile --quiet --universal --python-version 3.11 --generate-hashes \
		--all-extras pyproject.toml -c requirements.txt -o requirements.lock

# The app image: its own interpreter (Debian's Python 3.11.2) and platform.
lock-image:
	.venv/bin/uv pip compile --quiet --python-version 3.11.2 --python-platform x86_64-manylinux_2_28 \
		compose/app/requirements.in -o compose/app/requirements.lock
