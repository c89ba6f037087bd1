# Set-up and everyday commands. `make demo` and `make test` work on a fresh machine.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
# torch is pinned in constraints.txt: 2.13.0 resolves to the local CPU wheel (no CUDA downloads).
INSTALL := $(PIP) install --quiet -c constraints.txt

.PHONY: install dev demo test bench clean

$(VENV)/.installed: pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(INSTALL) torch==2.13.0
	$(INSTALL) -e .
	touch $@

$(VENV)/.dev-installed: $(VENV)/.installed
	$(INSTALL) -e '.[dev]'
	touch $@

install: $(VENV)/.installed

dev: $(VENV)/.dev-installed

demo: install
	mkdir -p out
	$(VENV)/bin/impasto stylize src/impasto/examples/chelsea.png src/impasto/examples/swirls.png \
		-o out/demo.png --size 256 --steps 100

test: dev
	$(PY) -m pytest -q

bench: install
	$(PY) benchmarks/gatys.py

clean:
	rm -rf $(VENV) out .pytest_cache
