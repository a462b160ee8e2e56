"""``python -m hf_mmbuilder.cli``: the ``hf-mmbuilder`` command without the console script."""

import sys

from . import main

# Guarded: tools that import every module (the doctest collector) must not run the CLI.
if __name__ == "__main__":
    sys.exit(main())
