# The two commands of the README: `make book` and `make test`.
# Each creates the virtual environment and installs what it needs on first use;
# a second run finds the stamps and skips the installation.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.xaihelpers-installed
SYSTAMP := $(VENV)/.system-packages-installed
# Debian packages: Fashion-MNIST for the benchmark; Chromium and its driver for the site test.
DEBIAN_PACKAGES := dataset-fashion-mnist chromium chromium-driver
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: install system book test clean student speed

install: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --disable-pip-version-check -e ".[all]"
	touch $(STAMP)

system: $(SYSTAMP)

$(SYSTAMP): | $(STAMP)
	@if dpkg -s $(DEBIAN_PACKAGES) >/dev/null 2>&1; then \
		echo "Debian packages already installed: $(DEBIAN_PACKAGES)"; \
	else \
		$(SUDO) apt-get update && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y $(DEBIAN_PACKAGES); \
	fi
	touch $(SYSTAMP)

# Execute every chapter with its default parameters and build the site into _build/html.
book: $(STAMP) $(SYSTAMP)
	$(VENV)/bin/jupyter-book build . -W -n --keep-going

# Unit tests, every chapter through papermill (SMOKE=True), and the rendered site in Chromium.
test: $(STAMP) $(SYSTAMP)
	$(PY) -m pytest

clean:
	rm -rf _build

# The speed table of every method and the reference libraries (benchmarks/results/speed.md).
speed: $(STAMP)
	$(PY) -m benchmarks

# Student versions of the chapters, without the exercise solutions (student/, not in the site).
student:
	$(PYTHON) scripts/student_notebooks.py
