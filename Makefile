# The two commands: `make run` (set up, then evolve the quickstart study) and `make test`.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
# CPU build of PyTorch (on this machine pip takes it from local disk). On a CUDA machine, e.g.:
#   make setup TORCH_SPEC="torch==2.13.0 --index-url https://download.pytorch.org/whl/cu126"
TORCH_SPEC ?= torch==2.13.0
STUDY  ?= studies/quickstart.yaml
PYTEST_ARGS ?=
# test processes (pytest-xdist; one torch thread each, tests/conftest.py): 2 suits a 2-core machine
TEST_WORKERS ?= 2

.PHONY: setup run test docs bench clean
setup: $(VENV)/.installed

# Debian's Chromium + ChromeDriver for the UI test (tests/test_ui.py), installed when missing.
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
BROWSER_PKGS ?= chromium chromium-driver

# The example fitness plug-in package (examples/) is installed beside evolora: the tests use its entry points.
EXAMPLE_PLUGIN := examples/evolora-example-plugin

$(VENV)/.installed: pyproject.toml $(EXAMPLE_PLUGIN)/pyproject.toml
	@command -v chromium >/dev/null 2>&1 && command -v chromedriver >/dev/null 2>&1 || \
	  ($(SUDO) apt-get install -y -q $(BROWSER_PKGS) >/dev/null || \
	   ($(SUDO) apt-get update -q >/dev/null && $(SUDO) apt-get install -y -q $(BROWSER_PKGS) >/dev/null))
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet $(TORCH_SPEC)
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	$(BIN)/python -m pip install --quiet -e $(EXAMPLE_PLUGIN)
	touch $@

run: setup
	HF_HUB_OFFLINE=1 $(BIN)/evolora run $(STUDY)

test: setup
	HF_HUB_OFFLINE=1 $(BIN)/python -m pytest -q -n $(TEST_WORKERS) $(PYTEST_ARGS)

# The documentation site (MkDocs + Material) into site/, strictly: a broken link or an unlisted page fails.
docs: setup
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --site-dir site

clean:
	rm -rf $(VENV) *.egg-info .pytest_cache site
