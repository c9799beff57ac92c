# Every target sets itself up: the first run creates .venv from the pinned
# requirements; later runs reuse it until a requirements file changes.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
COURSE := $(BIN)/course
# Keep TensorFlow's C++ start-up chatter out of terminals and logs.
export TF_CPP_MIN_LOG_LEVEL := 2
export PYTHONWARNINGS := ignore::DeprecationWarning

.PHONY: help setup confinement demo test lint lab release grade check bench gpu-check clean

help:
	@echo "make demo       release the assignments and autograde the bundled example submissions"
	@echo "make test       run the whole test suite (what CI runs)"
	@echo "make lab        start JupyterLab with the nbgrader extensions on this course"
	@echo "make release    regenerate assignments/ from solutions/"
	@echo "make grade A=<assignment> [FROM=<folder or zip>]   autograde submissions"
	@echo "make check      the quality gates (course check)"
	@echo "make bench      print the benchmark tables"
	@echo "make gpu-check  grade solutions and mutants on the accelerator present"

setup: $(STAMP)

$(STAMP): requirements.txt requirements-dev.txt pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))' || \
	  { echo "error: Python 3.11 is required (found $$($(PYTHON) --version 2>&1)); set PYTHON=/path/to/python3.11"; exit 1; }
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@echo "Installing the pinned environment into $(VENV) (first run: a few minutes)..."
	@$(BIN)/python -m pip install --quiet --disable-pip-version-check --upgrade "pip>=24"
	@$(BIN)/python -m pip install --quiet --disable-pip-version-check -r requirements.txt -r requirements-dev.txt
	@$(BIN)/python -m pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation -e .
	@$(BIN)/jupyter labextension list 2>&1 | grep -q "@jupyter/nbgrader.*enabled" || \
	  { echo "error: the nbgrader JupyterLab extension is not enabled"; exit 1; }
	@touch $@

# Grading confines student code with bubblewrap: installed here when make runs as root
# with apt-get (as in CI); otherwise one line says what to run. `course demo` then says
# whether it grades confined; the grading tests need it.
confinement:
	@command -v bwrap >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "Installing bubblewrap (confines student code while grading)..."; \
	    apt-get install -y -qq bubblewrap >/dev/null 2>&1 || \
	      { apt-get update -qq >/dev/null && apt-get install -y -qq bubblewrap >/dev/null; } || true; \
	  else \
	    echo "note: to confine student code while grading, run: sudo apt-get install bubblewrap"; \
	  fi; }

demo: $(STAMP) confinement
	$(COURSE) demo

test: $(STAMP) confinement
	$(BIN)/ruff check src tests benchmarks lectures nbgrader_config.py solutions
	# One run for the suite and the lectures' nbval, so that every worker stays busy to the end
	# (worksteal: a worker left idle takes tests queued for another); the slowest tests listed.
	$(BIN)/python -m pytest -n 2 --dist worksteal --durations 15 --nbval-lax --nbval-current-env \
	  tests $(wildcard lectures/*.ipynb)

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks lectures nbgrader_config.py solutions

# jupyter/ holds the course's lab settings (labconfig: no news or update checks from the web).
lab: $(STAMP)
	JUPYTER_CONFIG_PATH="$(CURDIR)/jupyter$${JUPYTER_CONFIG_PATH:+:$$JUPYTER_CONFIG_PATH}" \
	  $(BIN)/jupyter lab --ServerApp.ip=127.0.0.1 --ServerApp.root_dir=$(CURDIR)

release: $(STAMP)
	$(COURSE) release

grade: $(STAMP)
	@test -n "$(A)" || { echo "usage: make grade A=<assignment> [FROM=<folder or zip>] [WORKERS=<n>]"; exit 2; }
	$(COURSE) grade $(A) $(if $(FROM),--from $(FROM)) $(if $(WORKERS),--workers $(WORKERS))

check: $(STAMP)
	$(COURSE) check

bench: $(STAMP)
	@for script in benchmarks/*.py; do echo "== $$script"; $(BIN)/python $$script || exit 1; done

gpu-check: $(STAMP)
	$(COURSE) gpu-check

clean:
	rm -rf submitted autograded feedback gradebook.db grades*.csv
