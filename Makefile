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

# Browser tests drive Debian's chromium through Playwright; no browser is downloaded.
browser:
	@command -v chromium >/dev/null 2>&1 || { \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq chromium >/dev/null; }

demo: $(STAMP)
	$(BIN)/freezer build examples/labeling.ipynb -o build/labeling --force
	$(BIN)/freezer plan examples/labeling.ipynb

test: $(STAMP) browser
	$(BIN)/python -m pytest
