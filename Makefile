# The two commands a reader needs (see README):  make book   and   make test
PYTHON ?= python3
# Offline CIFAR-10, when present beside the repository (as on CI), unless VGG_CIFAR10_NPZ is
# already set: all of it (cifar10-full.npz, 50,000 + 10,000 images) if there, else the sample.
FULL_DATA := $(abspath ../shared/data/cifar10-full.npz)
SAMPLE := $(abspath ../shared/data/cifar10-mini.npz)
ifneq ($(wildcard $(FULL_DATA)),)
export VGG_CIFAR10_NPZ ?= $(FULL_DATA)
else ifneq ($(wildcard $(SAMPLE)),)
export VGG_CIFAR10_NPZ ?= $(SAMPLE)
endif
export PYTHONHASHSEED := 0
# The stored chapter outputs are those of the quick profile (see book/running.md); testing or
# re-executing them with another profile, or a GPU's default, would compare different runs.
test test-fast notebooks: export VGG_PROFILE := quick

.PHONY: install chromium book test test-fast notebooks colab-today

install:
	$(PYTHON) -m pip install -q --disable-pip-version-check -r requirements.txt
	$(PYTHON) -m pip install -q --disable-pip-version-check --no-deps -e .

# Build the static site from the notebooks' stored outputs; any Sphinx warning fails the build.
book: install
	jupyter-book build . --builder html -n -W --keep-going

# The browser test (tests/test_site_browser.py) drives Debian's chromium. Installed here when
# missing and possible (root with apt-get, as on CI); otherwise that test fails saying how.
chromium:
	@command -v chromium >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "installing chromium (apt-get)"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	  else echo "chromium is missing: sudo apt-get install -y chromium (the browser test needs it)"; fi; }

# Unit tests, nbval on every chapter, the Colab stand-in, a warning-free book build and the
# built site checked in a headless browser.
test: install chromium
	$(PYTHON) -m pytest

# The unit tests only, for the inner loop while changing vgg_lib (no nbval, no book build, no
# browser, no torchrun launches or sandboxed grading: see the markers in pyproject.toml).
test-fast:
	$(PYTHON) -m pytest tests -m "not notebooks and not book and not browser and not slow"

# Re-execute chapters top to bottom and store their outputs (maintainers, before committing); stamp each
# with profile, machine and versions (progress bars to text, unused widget state dropped) and refresh
# the run times of book/instructors.md and book/execution.md.
# make notebooks NOTEBOOKS=notebooks/02_receptive_fields.ipynb  runs just one.
NOTEBOOKS ?= $(sort $(wildcard notebooks/*.ipynb))
notebooks: install
	for nb in $(NOTEBOOKS); do \
	  echo "executing $$nb"; \
	  $(PYTHON) -m jupyter execute --inplace --timeout=1800 --kernel_name=python3 $$nb || exit 1; \
	  $(PYTHON) -m vgg_lib.teaching.execution --stamp $$nb || exit 1; \
	done
	$(PYTHON) -m vgg_lib.teaching.instructors_page --write

# Every chapter, top to bottom, in a stand-in for today's Google Colab: Python 3.13, torch 2.11,
# torchvision 0.26 (tests/colab_today.py). Not part of `make test`: 10-30 minutes on 2 cores,
# plus building its environment once (~5 GB from PyPI, cached in ~/.cache/vgg_book/colab-today).
# Needs a Python 3.13 (pyenv's, or COLAB_TODAY_PYTHON=/path/to/python3.13).
colab-today:
	$(PYTHON) tests/colab_today.py
