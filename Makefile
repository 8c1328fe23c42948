# Set-up and the everyday commands. Everything installs into .venv.
VENV ?= .venv
PY := $(VENV)/bin/python
WORKDIR ?= runs/demo

.PHONY: install demo test clean

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[dev]"
	touch $@

# The main job on embedded data: a DCGAN on scikit-learn's handwritten digits.
demo: install
	$(PY) -m gen_jax.main --config=configs/dcgan.py:digits --workdir=$(WORKDIR)
	@echo "samples: $(WORKDIR)/samples/  metrics: $(WORKDIR)/metrics.jsonl"

test: install
	$(PY) -m pytest -n 2 --durations=25 tests

clean:
	rm -rf $(VENV) runs *.egg-info
