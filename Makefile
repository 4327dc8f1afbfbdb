# The two commands a reader needs (see README):  make book   and   make test
# Both run in the project's own virtual environment, .venv: the first `make` creates it with
# $(PYTHON) (3.11 or newer) and installs the pinned requirements and vgg_lib into it; later runs
# reuse it and reinstall only when requirements.txt or pyproject.toml change. The reader's own
# Python is never installed into. PYTHON=python3.12 make book  picks the interpreter.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
INSTALLED := $(VENV)/.installed
MIN_PYTHON := 3.11
# Every command below, and what it starts (kernels, jupyter-book, pytest), runs inside the venv.
export VIRTUAL_ENV := $(abspath $(VENV))
export PATH := $(VIRTUAL_ENV)/bin:$(PATH)
# Console scripts run by the venv's interpreter (a venv made --system-site-packages may not have
# its own copies of them).
JUPYTER_BOOK := $(PY) -c 'import sys; from jupyter_book.cli.main import main; sys.exit(main())'
JUPYTER_EXECUTE := $(PY) -c 'import sys; from nbclient.cli import main; sys.exit(main())'
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

.PHONY: install chromium poppler book pdf test test-fast notebooks colab-today results
.DEFAULT_GOAL := install

# One clear line, not a pip resolver error, when the interpreter that would be used (the venv's, or
# $(PYTHON) to make it) is older than $(MIN_PYTHON) or no Python at all. Not needed to install Debian's tools.
ifneq ($(filter-out chromium poppler,$(or $(MAKECMDGOALS),install)),)
USED_PYTHON := $(if $(wildcard $(PY)),$(PY),$(PYTHON))
USED_VERSION := $(shell $(USED_PYTHON) -c 'import sys; print("%d.%d" % sys.version_info[:2])' 2>/dev/null)
ifneq ($(shell printf '%s\n' $(MIN_PYTHON) $(or $(USED_VERSION),0) | sort -V | head -n1),$(MIN_PYTHON))
$(error the book needs Python $(MIN_PYTHON) or newer, and $(USED_PYTHON) is $(or $(USED_VERSION),not a working Python): $(if $(wildcard $(PY)),delete $(VENV) and run make again,install a newer one and name it, as in  make book PYTHON=python3.12))
endif
endif

$(PY):
	@echo "creating the virtual environment $(VENV) with $(PYTHON) (Python $(USED_VERSION))"
	@$(PYTHON) -m venv --system-site-packages --without-pip $(VENV) || { rm -rf $(VENV); \
	  echo "make: $(PYTHON) -m venv failed; on Debian or Ubuntu: apt-get install python3-venv"; exit 1; }
	@$(PY) -m pip --version >/dev/null 2>&1 || $(PY) -m ensurepip --default-pip >/dev/null || { rm -rf $(VENV); \
	  echo "make: no pip for $(PYTHON); on Debian or Ubuntu: apt-get install python3-pip"; exit 1; }

# The venv sees the interpreter's own packages, pip and setuptools included (the venv gets a pip of
# its own only where the interpreter has none): a pin the interpreter already has at that version
# is used as it is, so a machine that has them (CI) installs offline; anything missing or at
# another version is installed into the venv, never into the interpreter. vgg_lib itself is built
# with the setuptools the venv sees, where it has one, else with one pip fetches.
LOCAL_BUILD = $$($(PY) -c 'import setuptools' 2>/dev/null && echo --no-build-isolation)
# The stamp is newer than requirements.txt and pyproject.toml once they are installed.
$(INSTALLED): requirements.txt pyproject.toml | $(PY)
	$(PY) -m pip install -q --disable-pip-version-check -r requirements.txt
	$(PY) -m pip install -q --disable-pip-version-check --no-deps $(LOCAL_BUILD) -e .
	@touch $@

install: $(INSTALLED)

# The site from the notebooks' stored outputs (any Sphinx warning fails the build), then the whole
# book as one PDF and the site as a zip, both in _build/html and linked from its first page.
book: install chromium
	$(JUPYTER_BOOK) build . --builder html -n -W --keep-going
	$(PY) -m vgg_lib.teaching.book_pdf

# The PDF alone (_build/html/vgg-book.pdf), and the zip when the site is built: a single-page
# build printed by Debian's chromium (vgg_lib/teaching/book_pdf.py), no LaTeX.
pdf: install chromium
	$(PY) -m vgg_lib.teaching.book_pdf

# Debian's packages that the book's tools use, installed when missing (the check is $(1)) and
# possible (root with apt-get, as on CI); otherwise the step that needs one fails saying how.
define apt_install
@$(1) >/dev/null 2>&1 || { \
  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
    echo "installing $(2) (apt-get)"; \
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(2) >/dev/null; \
  else echo "$(2) is missing: sudo apt-get install -y $(2) ($(3))"; fi; }
endef

# chromium prints the PDF and drives the browser test (tests/test_site_browser.py); it downloads
# no browser. The emoji font draws the exercises' ✅ and ❌ in the PDF. poppler-utils' pdftotext
# and pdfimages read the PDF back (tests/test_book_pdf.py).
chromium:
	$(call apt_install,command -v chromium,chromium,the PDF and the browser test need it)
	$(call apt_install,fc-list | grep -q 'Noto Color Emoji',fonts-noto-color-emoji,the PDF draws ✅ with it)
poppler:
	$(call apt_install,command -v pdftotext,poppler-utils,the PDF test needs it)

# Unit tests, nbval on every chapter, the Colab stand-in, a warning-free book build and the
# built site checked in a headless browser.
test: install chromium poppler
	$(PY) -m pytest

# The unit tests only, for the inner loop while changing vgg_lib (no nbval, no book build, no
# browser, no torchrun launches or sandboxed grading: see the markers in pyproject.toml).
test-fast: install
	$(PY) -m pytest tests -m "not notebooks and not book and not browser and not slow"

# Re-execute chapters top to bottom and store their outputs (maintainers, before committing); stamp each
# with profile, machine and versions (progress bars to text, unused widget state dropped) and refresh
# the run times of book/instructors.md and book/execution.md.
# make notebooks NOTEBOOKS=notebooks/02_receptive_fields.ipynb  runs just one.
NOTEBOOKS ?= $(sort $(wildcard notebooks/*.ipynb))
notebooks: install
	for nb in $(NOTEBOOKS); do \
	  echo "executing $$nb"; \
	  $(JUPYTER_EXECUTE) --inplace --timeout=1800 --kernel_name=python3 $$nb || exit 1; \
	  $(PY) -m vgg_lib.teaching.execution --stamp $$nb || exit 1; \
	done
	$(PY) -m vgg_lib.teaching.instructors_page --write

# The run records the book ships (results/<study>/, one JSON per run): train the runs of a chapter's
# records study that are not recorded yet (resumable). VERIFY=N trains N recorded runs again, chosen
# at random, and compares them with their records (vgg_lib/results.py says how).
# make results CHAPTER=10    make results CHAPTER=10 VERIFY=2    make results CHAPTER="4 11" VERIFY=1
results: install
	nice -n 10 env OMP_NUM_THREADS=1 $(PY) -m vgg_lib.results $(foreach c,$(CHAPTER),--chapter $(c)) $(if $(VERIFY),--verify $(VERIFY))

# Every chapter, top to bottom, in a stand-in for today's Google Colab: Python 3.13, torch 2.11,
# torchvision 0.26 (tests/colab_today.py). Not part of `make test`: 10-30 minutes on 2 cores,
# plus building its environment once (~5 GB from PyPI, cached in ~/.cache/vgg_book/colab-today).
# Needs a Python 3.13 (pyenv's, or COLAB_TODAY_PYTHON=/path/to/python3.13).
colab-today: install
	$(PY) tests/colab_today.py
