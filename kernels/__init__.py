"""Compiled fast paths: arrays in, arrays out.

Modules here import numpy, numba and faiss only, never ``datasets``; the core wraps them.
Installed as ``hf_mmbuilder.kernels`` (a top-level ``kernels`` package exists in the Hugging Face
ecosystem and must not be shadowed).
"""
