"""The Ray engine on a two-node Ray cluster on loopback: ``ray start --head`` plus a second
``ray start --address=127.0.0.1:<port>`` process, one CPU each, stopped at the end (only the
processes this module started, by pid). The Python API and ``hf-mmbuilder dedup --engine ray
--address`` give the single-machine keep set."""

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import datasets
import numpy as np
import pytest

pytestmark = pytest.mark.integration

pytest.importorskip("ray", reason="the Ray engine tests need the ray extra (pip install -e '.[ray]')")
psutil = pytest.importorskip("psutil")

import hf_mmbuilder  # noqa: E402
from hf_mmbuilder import ray_engine  # noqa: E402
from hf_mmbuilder.testing import planted_corpus  # noqa: E402

RAY = str(Path(sys.executable).with_name("ray"))
NUM_DOCS = 20_000


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _start(arguments: list, env: dict, log: Path) -> subprocess.Popen:
    # --block keeps `ray start` in the foreground as the parent of its node's processes, so the
    # fixture can stop exactly these by pid.
    with open(log, "wb") as handle:
        return subprocess.Popen([RAY, "start", "--block", *arguments], stdout=handle, stderr=subprocess.STDOUT, env=env, start_new_session=True)


def _stop(processes: list) -> None:
    tree = []
    for process in processes:
        try:
            tree.extend(psutil.Process(process.pid).children(recursive=True))
            tree.append(psutil.Process(process.pid))
        except psutil.NoSuchProcess:
            continue
    for member in tree:
        try:
            member.send_signal(signal.SIGTERM)
        except psutil.NoSuchProcess:
            pass
    _, alive = psutil.wait_procs(tree, timeout=5)
    for member in alive:
        try:
            member.kill()
        except psutil.NoSuchProcess:
            pass


# A loopback-only test cluster runs without Ray's token authentication (a real cluster keeps it:
# see the README), so the driver, the CLI and both nodes agree without sharing a token file.
TEST_ENV = {"RAY_DISABLE_USAGE_STATS": "1", "RAY_AUTH_MODE": "disabled"}


@pytest.fixture(scope="module")
def cluster():
    saved = {name: os.environ.get(name) for name in TEST_ENV}
    os.environ.update(TEST_ENV)
    temp_dir = tempfile.mkdtemp(prefix="hfmm-ray2-")
    port = _free_port()
    address = f"127.0.0.1:{port}"
    env = dict(os.environ)
    common = ["--num-cpus=1", f"--object-store-memory={300 << 20}", "--disable-usage-stats"]
    processes = [_start(["--head", f"--port={port}", "--node-ip-address=127.0.0.1", "--include-dashboard=false", f"--temp-dir={temp_dir}", *common], env, Path(temp_dir) / "head.log")]
    try:
        ray = _connect_when_up(address, processes[0], temp_dir)
        processes.append(_start([f"--address={address}", "--node-ip-address=127.0.0.1", *common], env, Path(temp_dir) / "worker.log"))
        deadline = time.monotonic() + 90
        while sum(node["Alive"] for node in ray.nodes()) < 2:
            if time.monotonic() > deadline or processes[1].poll() is not None:
                raise RuntimeError(f"the second node did not join: {(Path(temp_dir) / 'worker.log').read_text()[-2000:]}")
            time.sleep(0.5)
        yield address
    finally:
        if ray_engine._ray().is_initialized():
            ray_engine._ray().shutdown()
        _stop(processes)
        shutil.rmtree(temp_dir, ignore_errors=True)
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def _connect_when_up(address: str, head: subprocess.Popen, temp_dir: str):
    deadline = time.monotonic() + 90
    while True:
        if head.poll() is not None:
            raise RuntimeError(f"ray start --head exited: {(Path(temp_dir) / 'head.log').read_text()[-2000:]}")
        try:
            return ray_engine.init(address, log_to_driver=False)
        except ConnectionError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)


def _node_ids(ray) -> set:
    @ray.remote(num_cpus=1)
    def node_of_task():
        time.sleep(0.5)  # long enough that the two tasks cannot share one node's only CPU in turn
        return ray.get_runtime_context().get_node_id()

    return set(ray.get([node_of_task.remote() for _ in range(2)]))


def test_distributed_dedup_on_two_nodes_keeps_the_single_machine_rows(cluster, tmp_path):
    ray = ray_engine._ray()
    assert len(_node_ids(ray)) == 2 and ray_engine.cluster_cpus() == 2
    ds = datasets.Dataset.from_dict({"text": planted_corpus(NUM_DOCS, seed=1), "row": np.arange(NUM_DOCS)})
    expected = hf_mmbuilder.dedup(ds, "minhash")["row"]
    assert len(expected) < NUM_DOCS
    assert hf_mmbuilder.dedup(ds, "minhash", engine="ray", batch_size=5_000)["row"] == expected

    # The CLI, as a separate driver joining the same cluster.
    source = tmp_path / "in.dj.jsonl"
    with open(source, "w") as handle:
        for row in ds.select(range(5_000)):
            handle.write(json.dumps(row) + "\n")
    output = tmp_path / "out.dj.jsonl"
    env = dict(os.environ)
    command = [sys.executable, "-m", "hf_mmbuilder.cli", "dedup", "--engine", "ray", "--address", cluster, "--cache-dir", str(tmp_path / "cache"), str(source), str(output)]
    result = subprocess.run(command, capture_output=True, text=True, env=env, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    rows = [json.loads(line)["row"] for line in open(output)]
    assert rows == hf_mmbuilder.dedup(ds.select(range(5_000)), "minhash")["row"]
