# The README's commands. Each creates .venv on first use; only a Python 3.11 is needed.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo test test-slow bench vlm clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[dev]"
	touch $(STAMP)

demo: $(STAMP)
	$(PY) -m hf_mmbuilder.demo --out demo_output

test: $(STAMP)
	$(PY) -m pytest -q

test-slow: $(STAMP)
	$(PY) -m pytest -q -m slow

# Peers for the benchmarks: datasketch, rensa, imagehash in the project venv; Data-Juicer in
# its own venv (.venv-dj) because its dependency set is huge and installs packages at run time.
bench: $(STAMP)
	$(PY) -m pip install --quiet -e ".[dev,bench]"
	test -x .venv-dj/bin/python || ( $(PYTHON) -m venv .venv-dj && \
	  .venv-dj/bin/pip install --quiet --no-deps py-data-juicer==1.6.1 && \
	  .venv-dj/bin/pip install --quiet fire jsonlines loguru tqdm psutil tomli zstandard datasets pydantic aiohttp regex pillow numpy )
	for b in benchmarks/*.py; do $(PY) $$b || exit 1; done

# torch CPU wheel from this machine's disk, then transformers.
vlm: $(STAMP)
	$(PY) -m pip install --quiet torch==2.13.0
	$(PY) -m pip install --quiet -e ".[vlm]"

clean:
	rm -rf $(VENV) .venv-dj demo_output
