# Scene Diffusion developer commands. Every target sets up what it needs, idempotently.
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
MODEL ?=

.PHONY: setup lint test test-blender-versions demo bench build validate clean

setup: $(STAMP)

$(STAMP): constraints.txt requirements.txt requirements-dev.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -c constraints.txt -r requirements-dev.txt
	touch $(STAMP)

lint: $(STAMP)
	$(PY) -m ruff check .

test: lint
	$(PY) -m pytest -q tests

# The Blender-side tests on bpy 4.2 LTS, 4.5 LTS and 5.0 (each its own small venv beside .venv).
test-blender-versions: $(STAMP)
	$(PY) scripts/blender_versions.py $(VERSIONS)

demo: $(STAMP)
	$(PY) scripts/demo.py --model "$(MODEL)" --out out

bench: $(STAMP)
	$(PY) scripts/bench.py

validate: $(STAMP)
	$(PY) scripts/blender_ext.py validate .

build: validate
	mkdir -p dist
	$(PY) scripts/blender_ext.py build --source-dir . --output-dir dist

clean:
	rm -rf dist out .pytest_cache .ruff_cache .venv-blender
