# convlab: `make demo` sets up and runs the main job, `make test` sets up and runs the tests.
# Both create or reuse .venv. torch is pinned to 2.13.0 (CPU wheel) when it is not importable,
# because an unpinned torch pulls a multi-GB CUDA build.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.convlab-installed
TESTED := $(VENV)/.convlab-test-installed
FMNIST := /usr/share/datasets/fashion-mnist

.PHONY: setup data data-if-possible browser-if-possible graphviz-if-possible demo test test-all bench clean

# the venv without ensurepip's pip (it byte-compiles pip and setuptools), then pip and setuptools put in
# with --no-compile by the pip already at hand; ensurepip where there is none. With setuptools in the
# venv, convlab's editable install skips pip's isolated build environment. On this project's 2-core
# machine: 6 s for ensurepip against 2-3 s, and 2.5 s less for the install
$(PY):
	$(PYTHON) -m venv --without-pip $(VENV)
	$(PYTHON) -m pip --python $(PY) install -q --no-compile pip "setuptools>=77" 2>/dev/null || \
	  ($(PY) -m ensurepip >/dev/null && $(PY) -m pip install -q "setuptools>=77")

# pip byte-compiles every file it installs (torch has 5,000: half a minute); --no-compile, then the
# modules convlab's commands import are compiled by importing them once with bytecode writing on
# (a third of the files), so the first command does not compile them (nor every command, where
# PYTHONDONTWRITEBYTECODE is set). No command imports torch._dynamo (training steps its optimizer
# without it), so its thousand files are left to make test.
WARM := import convlab.cli, convlab.training.loop, convlab.analyze, convlab.viz, matplotlib.pyplot

# torch (where it is not importable yet) and convlab in one pip run
$(STAMP): $(PY) pyproject.toml
	$(PY) -m pip install -q --no-compile --no-build-isolation $$($(PY) -c "import torch" 2>/dev/null || echo torch==2.13.0) -e .
	env -u PYTHONDONTWRITEBYTECODE $(PY) -c "$(WARM)"
	touch $(STAMP)

# the test tools (pytest, hypothesis, and nbclient + ipykernel to run the example notebooks) only for make
# test, which imports much more of torch: the rest of the venv is byte-compiled then, on every core
$(TESTED): $(STAMP)
	$(PY) -m pip install -q --no-build-isolation -e ".[test]"
	$(PY) -m compileall -q -j 0 $(VENV)/lib >/dev/null || true  # a few packages ship templates that are not Python
	touch $(TESTED)

setup: $(STAMP)

# Fashion-MNIST: Debian's package where apt is at hand (as root), else convlab downloads it.
data: $(STAMP)
	@if [ -d $(FMNIST) ]; then echo "fashion-mnist: $(FMNIST)"; \
	elif command -v apt-get >/dev/null 2>&1 && [ "$$(id -u)" = 0 ]; then \
	  (apt-get install -y -qq dataset-fashion-mnist >/dev/null 2>&1 || \
	   (apt-get update -qq >/dev/null 2>&1 && apt-get install -y -qq dataset-fashion-mnist >/dev/null 2>&1)) \
	  && echo "fashion-mnist: installed $(FMNIST)" || $(VENV)/bin/convlab data fetch fashion-mnist; \
	else $(VENV)/bin/convlab data fetch fashion-mnist; fi

# tests that read the real Fashion-MNIST skip when it cannot be had (no apt, no network)
data-if-possible: $(STAMP)
	-@$(MAKE) --no-print-directory data

# the main job: look at the zoo's fastcnn, then train it to 91% on Fashion-MNIST (3 epochs, 13-15 s
# of training on a 2-core CPU), then say how to reach convlab from a new shell and what to try next
demo: data
	$(VENV)/bin/convlab summary fastcnn
	$(VENV)/bin/convlab train fastcnn --data fashion-mnist
	@run=$$(ls -d runs/*-fastcnn-fashion-mnist 2>/dev/null | tail -n 1); \
	echo; \
	echo "convlab lives in $(VENV): in a new shell run '. $(VENV)/bin/activate' (or call $(VENV)/bin/convlab)."; \
	echo "Next, try:"; \
	printf '  %-52s # %s\n' "convlab viz $$run" "its filters and feature maps" \
	  "convlab eval $$run" "per-class accuracy, confusion matrix" \
	  "convlab tour" "the course notes' ideas, numbers computed live"

# the playground's browser tests drive Debian's headless Chromium; they skip where it cannot be had
browser-if-possible:
	-@if command -v chromium >/dev/null 2>&1 && command -v chromedriver >/dev/null 2>&1; then :; \
	elif command -v apt-get >/dev/null 2>&1 && [ "$$(id -u)" = 0 ]; then \
	  (apt-get install -y -qq chromium chromium-driver >/dev/null 2>&1 || \
	   (apt-get update -qq >/dev/null 2>&1 && apt-get install -y -qq chromium chromium-driver >/dev/null 2>&1)) \
	  && echo "chromium: installed for the browser tests" || echo "chromium: not installed; the browser tests will skip"; \
	else echo "chromium: not found; the browser tests will skip"; fi

# convlab draw's graph view is laid out by Graphviz (the volumes view needs nothing); its tests skip without it
graphviz-if-possible:
	-@if command -v dot >/dev/null 2>&1; then :; \
	elif command -v apt-get >/dev/null 2>&1 && [ "$$(id -u)" = 0 ]; then \
	  (apt-get install -y -qq graphviz >/dev/null 2>&1 || \
	   (apt-get update -qq >/dev/null 2>&1 && apt-get install -y -qq graphviz >/dev/null 2>&1)) \
	  && echo "graphviz: installed for convlab draw's graph view" || echo "graphviz: not installed; the graph view's tests will skip"; \
	else echo "graphviz: not found; the graph view's tests will skip"; fi

test: $(TESTED) data-if-possible browser-if-possible graphviz-if-possible
	$(PY) -m pytest -m "not slow"

bench: $(TESTED) data-if-possible
	$(PY) -m pip install -q torchinfo
	$(PY) bench/summary_speed.py
	$(PY) bench/data_speed.py
	$(PY) bench/pool_speed.py
	$(PY) bench/scratch_speed.py
	$(PY) bench/train_speed.py

test-all: $(TESTED) data
	$(PY) -m pytest

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis src/*.egg-info
