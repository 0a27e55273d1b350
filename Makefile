# Everything starts from a fresh clone: each target creates .venv and installs the
# pinned dependencies from pyproject.toml first (only when pyproject.toml changed).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PORT ?=
BOARD ?= virtual
# The suite waits on simulated hardware more than it computes, so it runs more workers
# than cores: 6 on 2 cores take ~144 s quiet for 591 tests, with ~195 s of CPU
# (docs/figures.md, "Figures"). JOBS=4 is the lighter choice.
JOBS ?= 6

.PHONY: setup demo test lint hil bench sim flash deploy clean safety-report safety-mutants fuzz soak passes

setup: $(STAMP)

# The first install takes a minute or two: say so, and let pip show each package it fetches
# and installs (quiet, it was two minutes of silence that looked like a hang).
$(STAMP): pyproject.toml
	@echo "make: installing penctl and its dependencies into $(VENV) (first run, or pyproject.toml changed: 1-2 min)"
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --progress-bar on -e '.[dev]'
	@echo "make: $(VENV) is ready"
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/python -m penctl.demo --board $(BOARD)

test: $(STAMP) lint
	$(BIN)/pytest -q -n $(JOBS) --maxschedchunk=1 tests hil_tests

lint: $(STAMP)
	$(BIN)/ruff check host firmware tests hil_tests

safety-report: $(STAMP)
	$(BIN)/python hil_tests/safety_report.py $(if $(PORT),--port "$(PORT)")

safety-mutants: $(STAMP)
	$(BIN)/python hil_tests/mutants.py

fuzz: $(STAMP)
	PEN_FUZZ_N=$(or $(N),2000) $(BIN)/pytest -q hil_tests/test_fuzz.py --hypothesis-show-statistics

soak: $(STAMP)
	PEN_SOAK_N=$(or $(N),500) PEN_SOAK_STEPS=$(or $(STEPS),30) $(BIN)/pytest -q \
		hil_tests/test_stateful.py $(if $(STATS),--hypothesis-show-statistics)

passes: $(STAMP)
	$(BIN)/python -m penctl.passes -n $(or $(N),200) --seconds $(or $(SECONDS),2) \
		$(if $(PORT),--port "$(PORT)")

bench: $(STAMP)
	$(BIN)/python -m penctl.bench --board $(BOARD)

sim: $(STAMP)
	$(BIN)/pen sim --board $(BOARD)

hil: $(STAMP)
	@test -n "$(PORT)" || { echo "usage: make hil PORT=/dev/ttyUSB0"; exit 2; }
	$(BIN)/pytest -q hil_tests --port "$(PORT)"

flash: $(STAMP)
	@test -n "$(PORT)" -a -n "$(FW)" || { echo "usage: make flash PORT=/dev/ttyUSB0 FW=micropython-esp32.bin [BOARD=esp32-devkitc]"; exit 2; }
	$(BIN)/pen --port "$(PORT)" flash --firmware "$(FW)" --board $(or $(filter-out virtual,$(BOARD)),esp32-devkitc)

deploy: $(STAMP)
	@test -n "$(PORT)" || { echo "usage: make deploy PORT=/dev/ttyUSB0 [BOARD=esp32-devkitc] [SOURCE=1]"; exit 2; }
	$(BIN)/pen --port "$(PORT)" deploy $(if $(filter-out virtual,$(BOARD)),--board $(BOARD)) $(if $(SOURCE),--source)

clean:
	rm -rf $(VENV) build *.egg-info host/*.egg-info .pytest_cache .ruff_cache .hypothesis
