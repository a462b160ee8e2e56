"""Compiled fast paths: arrays in, arrays out.

Modules here import numpy, numba and faiss only, never ``datasets``; the core wraps them.
Installed as ``hf_mmbuilder.kernels`` (a top-level ``kernels`` package exists in the Hugging Face
ecosystem and must not be shadowed).

Helpers called per byte, number, record or row are compiled with ``_nrt=False`` (they allocate
nothing): with Numba's reference counting on, every call increments and decrements each array
argument's count with atomic instructions, and threads working on the same array bounce that
cache line between cores. Measured here: those two instructions were a third of the MMC4 matrix
parse and a tenth of the LLaVA load; the matrix parse ran 2-3x faster without them. Functions
that allocate keep reference counting and hand their scratch arrays down.
"""
