"""One module per source format: its BuilderConfig, its datasets builder and its exporter.

Installed as ``hf_mmbuilder.loading_scripts``; ``import hf_mmbuilder`` registers every module here
as ``hf_mmbuilder/<module name>`` with ``datasets``.
"""
