"""The Ray engine on an in-process Ray cluster (``ray.init(num_cpus=2)``, one per module): same
keep set as the single-machine dedup (200k documents with planted near duplicates, Data-Juicer's
demo), a worker killed mid-job, conversion with bad shards, ops under ``map_batches``."""

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time

import datasets
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

pytestmark = pytest.mark.integration

pytest.importorskip("ray", reason="the Ray engine tests need the ray extra (pip install -e '.[ray]')")
psutil = pytest.importorskip("psutil")

import hf_mmbuilder  # noqa: E402
import hf_mmbuilder.ray as mmray  # noqa: E402
from hf_mmbuilder.ray import duplicates as ray_duplicates  # noqa: E402
from hf_mmbuilder.testing import mmc4_records, write_jsonl  # noqa: E402
from hf_mmbuilder.duplicates import MinHashSignature, minhash_clusters  # noqa: E402
from hf_mmbuilder.kernels.unionfind import connected_components  # noqa: E402
from hf_mmbuilder.ops import ComputeStats, QualityFilter, RedactPII  # noqa: E402
from hf_mmbuilder.output_folder import MANIFEST, OutputFolderError  # noqa: E402
from hf_mmbuilder.testing import planted_corpus  # noqa: E402

DJ_KEPT = [0, 1, 2, 3, 5, 6, 7, 9, 12]
NUM_DOCS = 200_000


@pytest.fixture(scope="module")
def ray_session():
    temp_dir = tempfile.mkdtemp(prefix="hfmm-ray-")
    ray = mmray.init(num_cpus=2, object_store_memory=500 << 20, log_to_driver=False, _temp_dir=temp_dir)
    yield ray
    ray.shutdown()
    shutil.rmtree(temp_dir, ignore_errors=True)


@pytest.fixture(scope="module")
def corpus():
    """200k documents with a ``row`` column, and the single-machine labels for them."""
    ds = datasets.Dataset.from_dict({"text": planted_corpus(NUM_DOCS), "row": np.arange(NUM_DOCS)})
    return ds, minhash_clusters(ds)


def test_import_hf_mmbuilder_does_not_import_ray():
    code = "import sys, hf_mmbuilder, hf_mmbuilder.duplicates; print('ray' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "False"


def test_large_star_small_star_rounds_find_union_find_components():
    # The driver loop of cluster_stages, without Ray: edges spread over partitions, contracted
    # per partition, then rounds until no partition changes. Chains need the most rounds.
    rng = np.random.default_rng(3)
    for trial in range(150):
        n = int(rng.integers(1, 300))
        partitions = int(rng.integers(2, 6))
        if trial % 3 == 0:
            order = rng.permutation(n)
            left, right = order[:-1], order[1:]
        else:
            m = int(rng.integers(0, 3 * n))
            left, right = rng.integers(0, n, m), rng.integers(0, n, m)
        left, right = left.astype(np.int64), right.astype(np.int64)
        owner = rng.integers(0, partitions, left.size)
        outputs = [ray_duplicates._orient_and_split(partitions, *mmray.contract_edges(left[owner == q], right[owner == q])) for q in range(partitions)]
        inputs = [[outputs[q][p] for q in range(partitions)] for p in range(partitions)]
        previous = [None] * partitions
        while True:
            results = [ray_duplicates._large_star_task(partitions, previous[p], *inputs[p]) for p in range(partitions)]
            if not any(result[1] for result in results):
                break
            previous = [result[0] for result in results]
            small = [ray_duplicates._small_star_task(partitions, *[results[q][2 + p] for q in range(partitions)]) for p in range(partitions)]
            inputs = [[small[q][p] for q in range(partitions)] for p in range(partitions)]
        labels = np.arange(n)
        for edges in previous:
            rows, clusters = ray_duplicates._removed_rows(edges, np.zeros(1, np.int64))
            labels[rows] = clusters
        assert labels.tolist() == connected_components(n, left, right).tolist(), f"trial {trial}"


def test_distributed_dedup_keeps_the_same_rows_as_single_machine_on_200k_documents(ray_session, corpus):
    ds, labels = corpus
    expected_kept = np.flatnonzero(labels == np.arange(len(ds)))
    assert 10_000 < len(ds) - expected_kept.size < 20_000  # the planted copies LSH finds

    times = mmray.StageTimes()
    ray_labels = mmray.minhash_clusters(ds, times=times, batch_size=25_000)
    assert np.array_equal(ray_labels, labels)
    assert times.partitions >= 4 and times.rounds >= 2

    kept = hf_mmbuilder.dedup(ds, "minhash", engine="ray", batch_size=25_000)
    assert np.array_equal(np.asarray(kept["row"]), expected_kept)


def test_key_buckets_split_each_band_and_give_the_same_clusters(ray_session, corpus, monkeypatch):
    # A tiny per-group budget forces several key buckets per band (the path for huge corpora).
    ds, labels = corpus
    head = ds.select(range(20_000))
    monkeypatch.setattr(ray_duplicates, "_PARTITION_BYTES", 1 << 17)
    times = mmray.StageTimes()
    assert np.array_equal(mmray.minhash_clusters(head, num_partitions=6, times=times), minhash_clusters(head))
    assert times.partitions == 6


def test_data_juicer_demo_keeps_data_juicers_rows_on_ray(ray_session, shared_data):
    rows = [json.loads(line) for line in open(shared_data / "dedup" / "demo-dataset-deduplication.jsonl")]
    demo = datasets.Dataset.from_list(rows).add_column("row", list(range(len(rows))))
    kept, report = hf_mmbuilder.dedup(demo, "minhash", compat="data_juicer", engine="ray", return_report=True)
    assert list(kept["row"]) == DJ_KEPT
    assert report.num_removed == len(rows) - len(DJ_KEPT)
    clusters = hf_mmbuilder.dedup(demo, "minhash", compat="data_juicer", engine="ray", return_clusters=True)
    assert list(clusters["cluster_id"]) == list(hf_mmbuilder.dedup(demo, "minhash", compat="data_juicer", return_clusters=True)["cluster_id"])


def test_engine_is_checked():
    ds = datasets.Dataset.from_dict({"text": ["a b c d e f"]})
    with pytest.raises(ValueError, match="engine must be 'local' or 'ray'"):
        hf_mmbuilder.dedup(ds, "minhash", engine="spark")
    with pytest.raises(ValueError, match="engine='ray' runs method='minhash'"):
        hf_mmbuilder.dedup(ds, "exact", engine="ray")


def _kill_first_worker_running(marker: str, killed: list, stop: threading.Event) -> None:
    """Kill (SIGKILL) the first Ray worker of this test's cluster whose title shows it is running
    ``marker``. Only descendants of this process are looked at: never anyone else's Ray."""
    me = psutil.Process()
    while not stop.is_set():
        for process in me.children(recursive=True):
            try:
                title = " ".join(process.cmdline())
            except psutil.Error:
                continue
            if title.startswith("ray::") and marker in title:
                process.send_signal(signal.SIGKILL)
                killed.append(title.split()[0])
                return
        time.sleep(0.002)


def test_worker_killed_mid_job_gives_the_same_result_and_no_partial_output(ray_session, corpus, tmp_path):
    ds, labels = corpus
    shards = []
    for index in range(4):
        path = str(tmp_path / f"in-{index}.parquet")
        ds.select(range(index * 50_000, (index + 1) * 50_000)).to_parquet(path)
        shards.append(path)
    output = tmp_path / "dedup"
    killed, stop = [], threading.Event()
    killer = threading.Thread(target=_kill_first_worker_running, args=("_band_keys", killed, stop))
    killer.start()
    try:
        report = mmray.dedup_parquet(shards, str(output))
    finally:
        stop.set()
        killer.join()
    assert killed, "no signature worker was caught running; the fault was not injected"
    kept_rows = pa.concat_tables([pq.read_table(path) for path in report.files]).column("row").to_numpy()
    assert np.array_equal(kept_rows, np.flatnonzero(labels == np.arange(len(ds))))
    assert report.num_rows == len(ds) and report.num_kept == kept_rows.size
    assert sorted(os.listdir(output)) == [MANIFEST, *(f"part-{index:06d}.parquet" for index in range(4))]
    assert sorted(os.listdir(tmp_path)) == ["dedup", *(f"in-{index}.parquet" for index in range(4))]


def _mmc4_shards(folder) -> list[str]:
    records = list(mmc4_records(60, seed=5))
    return [
        write_jsonl(str(folder / "docs_shard_0_v3.jsonl.zip"), records[:30], zip_member="docs_shard_0_v3.jsonl"),
        write_jsonl(str(folder / "docs_shard_1_v3.jsonl"), records[30:]),
    ]


def test_convert_reads_shards_with_the_builders_parser(ray_session, tmp_path, cache_dir):
    shards = _mmc4_shards(tmp_path)
    report = mmray.convert("mmc4", shards, str(tmp_path / "out"))
    assert report.rejected_files == [] and report.rejects_path is None
    converted = datasets.load_dataset("parquet", data_files=report.files, split="train", cache_dir=cache_dir)
    loaded = hf_mmbuilder.load("mmc4", shards, split="train", cache_dir=cache_dir)
    assert report.num_rows == len(loaded) == 60
    order = np.argsort(np.asarray(converted["source_file"]), kind="stable")  # shard order, rows in file order
    assert converted.select(order).data.table.equals(loaded.data.table)


def test_bad_shards_are_reported_per_file_and_skipped_into_rejects(ray_session, tmp_path, cache_dir):
    good = _mmc4_shards(tmp_path)
    corrupt = tmp_path / "docs_shard_2_v3.jsonl.zip"
    corrupt.write_bytes(b"PK\x03\x04 truncated")
    broken = tmp_path / "docs_shard_3_v3.jsonl"
    broken.write_text('[{"text_list": ["unclosed"')
    missing = str(tmp_path / "docs_shard_4_v3.jsonl")
    report = mmray.convert("mmc4", [*good, str(corrupt), str(broken), missing], str(tmp_path / "out"), on_error="skip")
    reasons = {entry["file"]: entry["reason"] for entry in report.rejected_files}
    assert set(reasons) == {str(corrupt), missing}
    assert "unreadable zip archive" in reasons[str(corrupt)]
    assert "no such file" in reasons[missing]
    # A file cut inside its only record is readable: that record is the reject, as in a local load.
    assert [(entry["file"], entry["record"], entry["line"]) for entry in report.rejected_records] == [(str(broken), 0, 1)]
    assert report.rejected_records[0]["reason"] == "malformed JSON: Input data was truncated"
    assert report.num_rows == 60
    with open(report.rejects_path) as handle:
        assert {json.loads(line)["file"] for line in handle} == {str(corrupt), str(broken), missing}


def test_bad_shard_with_raise_fails_the_job_and_leaves_no_output(ray_session, tmp_path):
    good = _mmc4_shards(tmp_path)
    corrupt = tmp_path / "docs_shard_2_v3.jsonl.zip"
    corrupt.write_bytes(b"not a zip at all")
    with pytest.raises(mmray.SourceFileError) as raised:
        mmray.convert("mmc4", [*good, str(corrupt)], str(tmp_path / "out"))
    assert raised.value.path == str(corrupt) and "unreadable zip archive" in raised.value.reason
    assert sorted(os.listdir(tmp_path)) == sorted(["docs_shard_0_v3.jsonl.zip", "docs_shard_1_v3.jsonl", corrupt.name])


@pytest.mark.parametrize("batch_format", ["pyarrow", "numpy"])
def test_ops_run_unchanged_under_map_batches(ray_session, batch_format):
    texts = ["[[human]]: mail a.b@example.com <__dj__image>", "call +1 415 555 0100 now", "plain words " * 5, "x"]
    ds = datasets.Dataset.from_dict({"text": texts, "images": [["a.jpg"], [], [], []]})
    ops = [RedactPII(), ComputeStats(media=False), QualityFilter(min_text_len=5), MinHashSignature(output="band_keys")]
    execution = ray_session.data.DataContext.get_current().execution_options
    execution.preserve_order = True  # compare row by row with the datasets result
    try:
        ray_ds = mmray.from_hf(ds, rows_per_shard=2)
        local = ds
        for op in ops:
            ray_ds = mmray.map_batches(ray_ds, op, batch_format=batch_format)
            local = local.map(op, batched=True)
        back = mmray.to_hf(ray_ds)
    finally:
        execution.preserve_order = False
    assert back.column_names == local.column_names
    for name in local.column_names:
        assert back[name] == local[name], name


def test_hf_datasets_round_trip_through_parquet(ray_session, tmp_path, cache_dir):
    ds = datasets.Dataset.from_dict({"text": [f"row {i}" for i in range(50)], "images": [[f"{i}.jpg"] for i in range(50)]}).select(range(49, -1, -1))
    ray_ds = mmray.from_hf(ds, via_parquet=str(tmp_path / "in"), rows_per_shard=20)
    assert ray_ds.count() == 50
    back = mmray.to_hf(ray_ds, via_parquet=str(tmp_path / "out"), cache_dir=cache_dir)
    assert sorted(back["text"]) == sorted(ds["text"])
    assert sorted(os.listdir(tmp_path)) == ["hf_cache", "in", "out"]
    with pytest.raises(FileExistsError, match="exists"):
        mmray.write_parquet(ray_ds, str(tmp_path / "out"))


def test_overwrite_replaces_only_the_writers_own_shards(ray_session, tmp_path):
    out = tmp_path / "out"
    old = ray_session.data.from_items([{"text": f"old {index}"} for index in range(6)], override_num_blocks=3)
    first = mmray.write_parquet(old, str(out))
    assert first == [str(out / f"part-{index:06d}.parquet") for index in range(3)]
    (out / "notes.md").write_text("mine")
    (out / "sub").mkdir()
    (out / "sub" / "part-000000.parquet").write_bytes(b"the user's file, named like a shard one folder down")
    new = ray_session.data.from_items([{"text": "new 0"}, {"text": "new 1"}], override_num_blocks=1)
    with pytest.raises(OutputFolderError) as refused:
        mmray.write_parquet(new, str(out))
    assert str(refused.value) == (f"output_dir {str(out)!r} exists and holds an earlier parquet output: pass overwrite=True "
                                  "(--overwrite on the command line) to replace it; files it did not write are kept")
    second = mmray.write_parquet(new, str(out), overwrite=True)
    assert second == [str(out / "part-000000.parquet")]
    assert pq.read_table(second[0]).column("text").to_pylist() == ["new 0", "new 1"]
    assert sorted(path.relative_to(out).as_posix() for path in out.rglob("*") if path.is_file()) == [
        MANIFEST, "notes.md", "part-000000.parquet", "sub/part-000000.parquet"]
    assert (out / "notes.md").read_text() == "mine"
    assert sorted(os.listdir(tmp_path)) == ["out"]


def test_dedup_parquet_names_an_unreadable_shard(ray_session, tmp_path):
    good = tmp_path / "good.parquet"
    pq.write_table(pa.table({"text": ["a b c d e f"]}), good)
    bad = tmp_path / "bad.parquet"
    bad.write_bytes(b"PAR1 but no footer")
    with pytest.raises(mmray.SourceFileError, match="unreadable Parquet file") as raised:
        mmray.dedup_parquet([str(good), str(bad)], str(tmp_path / "out"))
    assert raised.value.path == str(bad)
    assert not (tmp_path / "out").exists()
