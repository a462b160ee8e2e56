"""Data generators for the README, the demo, the tests and the benchmarks (as ``numpy.testing``).

Example:
    >>> from hf_mmbuilder.testing import planted_corpus
    >>> len(planted_corpus(10))
    10
"""

from .corpus import planted_corpus

__all__ = ["planted_corpus"]
