"""Sub-commands of the ``hf-mmbuilder`` CLI, one module each (see ``hf_mmbuilder.cli``)."""
