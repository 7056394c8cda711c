# Two entry points: `make demo` (install, build and serve the bundled example)
# and `make test` (install what the tests need, then run the whole suite).
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo test install browser

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

# Browser tests drive Debian's chromium through Playwright (no browser is downloaded); the
# deployment tests put Debian's nginx in front of the server.
browser:
	@{ command -v chromium && command -v nginx; } >/dev/null 2>&1 || { \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive \
	    $$SUDO apt-get install -y -qq chromium nginx >/dev/null; }

# Build the labeling example and serve it at http://127.0.0.1:8866/ (SQLite in build/labeling/).
PORT ?= 8866
demo: $(STAMP)
	$(BIN)/freezer build examples/labeling.ipynb -o build/labeling
	$(BIN)/freezer serve build/labeling --port $(PORT) --auth name --admin-token demo-admin

# The suite mostly waits on kernels, servers and the browser: two workers (JOBS), each taking
# whole files (module-scoped servers stay one per file). JOBS=1 runs it in one process.
JOBS ?= 2
test: $(STAMP) browser
	$(BIN)/python -m pytest $(if $(filter 1,$(JOBS)),,-n $(JOBS) --dist loadfile)
