# The README's commands. Each creates .venv on first use; only a Python 3.11 is needed.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
LOCK := requirements/project.lock

# Python never puts the current folder on sys.path (-P for our commands, the variable for every
# process they start): the repository's top-level kernels/ is hf_mmbuilder.kernels and must not
# shadow Hugging Face's `kernels` package, which transformers imports.
export PYTHONSAFEPATH := 1

.PHONY: demo test test-fast test-slow bench lock clean

# Exactly the locked versions (requirements/project.lock, torch pinned to the CPU wheel on this
# machine's disk), then the package itself, editable, without dependencies.
$(STAMP): pyproject.toml setup.py $(LOCK)
	$(PYTHON) -P requirements/venvs.py install project $(VENV)
	touch $(STAMP)

demo: $(STAMP)
	$(PY) -P -m hf_mmbuilder.demo --out demo_output

# Unit and integration tests (Ray cluster, Hub server, wheel install, README runs, helper venvs).
test: $(STAMP)
	$(PY) -P -m pytest -q

# The unit tests alone, for a quick loop.
test-fast: $(STAMP)
	$(PY) -P -m pytest -q -m "not slow and not integration"

test-slow: $(STAMP)
	$(PY) -P -m pytest -q -m slow

# Peers for the benchmarks: datasketch, rensa, imagehash come with the bench extra; Data-Juicer
# gets its own venv (.venv-dj, from requirements/dj.lock) because its dependency set is huge and
# installs packages at run time.
bench: $(STAMP)
	$(PYTHON) -P requirements/venvs.py ensure dj
	for b in benchmarks/*.py; do $(PY) -P $$b || exit 1; done

# Re-resolve every environment's recipe (requirements/venvs.py) into its lock file.
lock:
	$(PYTHON) -P requirements/venvs.py refresh project dj llamafactory datasets4

clean:
	rm -rf $(VENV) .venv-dj .venv-llamafactory .venv-datasets4 demo_output
