"""Scale-out on Ray: conversion, ``hf_mmbuilder.ops`` and MinHash-LSH dedup over a Ray cluster.

Ray is an optional extra (``pip install "hf_mmbuilder[ray]"``); neither ``import hf_mmbuilder``
nor ``import hf_mmbuilder.ray`` imports it: :mod:`~hf_mmbuilder.ray.session` does so only when one
of these functions runs. Every stage runs the same
code as the single-machine path: the loading scripts' parsers, the ops' ``__call__``, and the
dedup stages of :mod:`hf_mmbuilder.duplicates` with their Numba kernels.

One module per concern: :mod:`~hf_mmbuilder.ray.session` (the connection),
:mod:`~hf_mmbuilder.ray.io` (``datasets`` <-> Ray, batched ops, Parquet folders),
:mod:`~hf_mmbuilder.ray.conversion` and :mod:`~hf_mmbuilder.ray.duplicates`.

- **Conversion**: :func:`read_sources` reads many source files (MMC4 ``.jsonl.zip`` shards, LLaVA
  JSON ...) as a Ray Dataset of DJ rows, one task per file, through the builder's own
  ``_plan_file`` / ``_shard_tables``; :func:`write_parquet` writes Parquet shards into a staging
  folder moved into place only when complete; :func:`convert` does both and reports rejects.
- **Ops**: :func:`map_batches` runs any batched op under ``Dataset.map_batches`` (``pyarrow`` or
  ``numpy`` batches); :func:`from_hf` / :func:`to_hf` move data between ``datasets`` and Ray.
- **Near-duplicate dedup**, the four stages of :mod:`hf_mmbuilder.duplicates` on Ray:

  1. signatures and band keys: ``map_batches`` with :func:`hf_mmbuilder.duplicates.signature_stage`;
  2. candidate edges: a hash-partitioned shuffle of ``(key, row)`` pairs by group ``(band,
     key % buckets)`` (as many buckets per band as keep a group under 256 MB; one for up to 16M
     rows), then ``lsh.band_edges`` per group in each partition, contracted right there by
     union-find into star edges ``(row, smallest row of its local component)``;
  3. connected components: large-star / small-star rounds (Kiveris et al., "Connected Components
     in MapReduce and Beyond", 2014) over partitions owned by ``row % partitions``, until a round
     changes no partition's edge set; no step holds more than one partition;
  4. filter: the driver keeps rows through ``hf_mmbuilder.duplicates`` (:func:`minhash_clusters`), or
     ``map_batches`` drops removed rows shard by shard (:func:`dedup_parquet`).

  Components equal those of the single-machine union-find, so the keep set is the same.

Fault tolerance comes from Ray: a task whose worker dies is retried (Ray Data map tasks without
limit, the shuffle and component tasks up to 3 times), every task is deterministic, and outputs
appear (moved from a staging folder) only once the whole job has succeeded.

Output folders follow :mod:`hf_mmbuilder.output_folder`: the shards are ``part-NNNNNN.parquet``; an
existing output is refused unless ``overwrite=True``, which replaces and deletes only the writers'
own shards (listed in the folder's manifest, or with exactly those names) and keeps every other
file.
"""

from .conversion import ConversionReport, SourceFileError, convert, read_rejects, read_sources
from .duplicates import (
    ParquetDedupReport,
    StageTimes,
    cluster_stages,
    contract_edges,
    dedup_parquet,
    large_star,
    minhash_clusters,
    small_star,
)
from .io import BatchOp, from_hf, map_batches, to_hf, write_parquet
from .session import cluster_cpus, init

__all__ = [
    "BatchOp",
    "ConversionReport",
    "ParquetDedupReport",
    "SourceFileError",
    "StageTimes",
    "cluster_cpus",
    "cluster_stages",
    "contract_edges",
    "convert",
    "dedup_parquet",
    "from_hf",
    "init",
    "large_star",
    "map_batches",
    "minhash_clusters",
    "read_rejects",
    "read_sources",
    "small_star",
    "to_hf",
    "write_parquet",
]
