# The README's commands. Each creates .venv on first use; only a Python 3.11 is needed.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo test test-slow bench clean

# torch comes first, pinned to the CPU wheel on this machine's disk: any extra that needs it
# (vlm) then finds it satisfied instead of pulling a multi-GB CUDA build.
$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet torch==2.13.0
	$(PY) -m pip install --quiet -e ".[dev,bench,vlm,video,ray]"
	touch $(STAMP)

demo: $(STAMP)
	$(PY) -m hf_mmbuilder.demo --out demo_output

test: $(STAMP)
	$(PY) -m pytest -q

test-slow: $(STAMP)
	$(PY) -m pytest -q -m slow

# Peers for the benchmarks: datasketch, rensa, imagehash come with the bench extra; Data-Juicer
# gets its own venv (.venv-dj) because its dependency set is huge and installs packages at run time.
bench: $(STAMP)
	test -x .venv-dj/bin/python || ( $(PYTHON) -m venv .venv-dj && \
	  .venv-dj/bin/pip install --quiet --no-deps py-data-juicer==1.6.1 && \
	  .venv-dj/bin/pip install --quiet fire jsonlines loguru tqdm psutil tomli zstandard datasets pydantic aiohttp regex pillow numpy )
	for b in benchmarks/*.py; do $(PY) $$b || exit 1; done

clean:
	rm -rf $(VENV) .venv-dj demo_output
