# The two commands of the README: `make book` and `make test`.
# Each creates the virtual environment and installs what it needs on first use;
# a second run finds the stamps and skips the installation.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.xaihelpers-installed
BOOK_SYSTAMP := $(VENV)/.book-packages-installed
TEST_SYSTAMP := $(VENV)/.test-packages-installed
# Debian/Ubuntu packages (the same names on Debian 12 and Ubuntu 22.04/24.04):
# Fashion-MNIST for chapter 1's benchmark; the site test also needs a browser and its driver.
BOOK_PACKAGES := dataset-fashion-mnist
TEST_PACKAGES := chromium chromium-driver
# Options of scripts/build_book.py, e.g. `make book BOOK_FLAGS="--smoke"` or "--jobs 1 --threads 2".
BOOK_FLAGS ?=
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
APT_INSTALL := $(SUDO) apt-get update && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y

# glibc hands every large freed tensor back to the system and page-faults it in again at the
# next step; on these virtual machines that costs up to 40 % of a CPU run (integrated gradients
# on the benchmark: 3.2 s -> 1.8 s). Keep freed memory in the process instead (the kernels that
# make book and the tests start inherit this). The numbers do not change, only the time.
export MALLOC_MMAP_THRESHOLD_ ?= 1073741824
export MALLOC_TRIM_THRESHOLD_ ?= 1073741824
export MALLOC_TOP_PAD_ ?= 268435456

.PHONY: install system-book system-test book test clean clean-cache student speed

install: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --disable-pip-version-check -e ".[all]"
	touch $(STAMP)

system-book: $(BOOK_SYSTAMP)

$(BOOK_SYSTAMP): | $(STAMP)
	@if dpkg -s $(BOOK_PACKAGES) >/dev/null 2>&1 || [ -d /usr/share/datasets/fashion-mnist ]; then \
		echo "Fashion-MNIST found ($(BOOK_PACKAGES))"; \
	else \
		$(APT_INSTALL) $(BOOK_PACKAGES); \
	fi
	touch $@

# A browser already on the PATH (e.g. Google Chrome and its driver on CI runners, or
# CHROME_BIN/CHROMEDRIVER set) is used as it is; otherwise Debian's chromium is installed.
system-test: $(TEST_SYSTAMP)

$(TEST_SYSTAMP): | $(STAMP)
	@if { [ -n "$$CHROME_BIN" ] || command -v chromium || command -v chromium-browser || command -v google-chrome \
			|| command -v google-chrome-stable || command -v chrome; } >/dev/null 2>&1 \
		&& { [ -n "$$CHROMEDRIVER" ] || command -v chromedriver; } >/dev/null 2>&1; then \
		echo "Browser and driver found"; \
	else \
		$(APT_INSTALL) $(TEST_PACKAGES); \
	fi
	touch $@

# Execute every chapter with its default parameters (in parallel, cached in _cache/executed/)
# and build the site into _build/html. See scripts/build_book.py --help.
book: $(STAMP) $(BOOK_SYSTAMP)
	$(PY) scripts/build_book.py $(BOOK_FLAGS)

# Unit tests, every chapter through papermill (SMOKE=True), and the rendered site in Chromium.
test: $(STAMP) $(BOOK_SYSTAMP) $(TEST_SYSTAMP)
	$(PY) -m pytest

# The site and its staging copy; the executed chapters stay in _cache (make clean-cache).
clean:
	rm -rf _build

clean-cache:
	rm -rf _cache

# The speed table of every method and the reference libraries (benchmarks/results/speed.md).
speed: $(STAMP)
	$(PY) -m benchmarks

# Student editions of the chapters, without the exercise solutions, into student/ (git-ignored;
# `make book` also publishes them in _build/html/student/, and the Colab edition holds them).
student:
	$(PYTHON) scripts/student_notebooks.py

# Lecture slides of every chapter from its own cells (reveal.js HTML in _build/slides/; the
# executed chapters of `make book` when _cache holds them, else the sources), with nbconvert
# (a dependency of the book). Options: SLIDES_FLAGS="--only 02 --source".
SLIDES_FLAGS ?=
.PHONY: slides
slides: $(STAMP)
	$(PY) scripts/slides.py $(SLIDES_FLAGS)
