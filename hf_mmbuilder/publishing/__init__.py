"""Publishing a dataset: seeded group-aware splits, a dataset card, Parquet shards, the Hub.

- :mod:`~hf_mmbuilder.publishing.publication`: :func:`publish`, the one call that does it all, and
  :func:`load_published`, which loads what it wrote with its JSON text columns decoded;
- :mod:`~hf_mmbuilder.publishing.splits`: :func:`plan_splits`, :func:`split_dataset`;
- :mod:`~hf_mmbuilder.publishing.card`: :class:`CardSpec`, statistics and plots;
- :mod:`~hf_mmbuilder.publishing.shards`: media checks and embedding, shard files and names;
- :mod:`~hf_mmbuilder.publishing.hub`: repo ids and the one Hub commit.

Example:
    >>> from hf_mmbuilder.publishing import publish, split_dataset
    >>> from datasets import Dataset
    >>> parts, plan = split_dataset(Dataset.from_dict({"text": [str(i) for i in range(10)]}), {"train": 0.8, "test": 0.2}, seed=0)
    >>> {name: len(part) for name, part in parts.items()}
    {'train': 8, 'test': 2}
"""

from .card import CardSpec
from .publication import PublishError, PublishResult, load_published, publish
from .splits import plan_splits, split_dataset

__all__ = ["CardSpec", "PublishError", "PublishResult", "load_published", "plan_splits", "publish", "split_dataset"]
