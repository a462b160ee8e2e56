"""One CLI vocabulary (issue 14): the shared input arguments, the one reader and writer, and the
old flag spellings, each a hidden alias that warns and still means what its new name means."""

import json

import numpy as np
import pyarrow.parquet as pq
import pytest
from datasets import Dataset

from hf_mmbuilder.cli import build_parser, main

# (command, old arguments, new arguments): each old spelling parses to what the new one does.
ALIASES = [
    ("dedup", ["--format", "llava"], ["--from", "llava"]),
    ("dedup", ["--clusters"], ["--return-clusters"]),
    ("dedup", ["--threshold", "0.5"], ["--jaccard-threshold", "0.5"]),
    ("dedup", ["--num-perm", "128"], ["--num-permutations", "128"]),
    ("dedup", ["--rows-per-band", "4"], ["--num-rows-per-band", "4"]),
    ("dedup", ["--mode", "data_juicer"], ["--compat", "data_juicer"]),
    ("dedup", ["--mode", "fast"], []),
    ("dedup", ["--param", "radius=4"], ["--option", "radius=4"]),
    ("publish", ["--split", "train=0.5,test=0.5"], ["--split-ratio", "train=0.5,test=0.5"]),
    ("publish", ["--reference-media"], ["--no-embed-media"]),
    ("publish", ["--message", "hello"], ["--commit-message", "hello"]),
    ("quality", ["--format", "llava"], ["--from", "llava"]),
    ("quality", ["--check-media"], ["--media-stats"]),
]
POSITIONAL = {"dedup": ["in.jsonl", "out.jsonl"], "publish": ["saved"], "quality": ["--from", "llava", "in.json"]}


def _parsed(command: str, flags: list) -> dict:
    arguments = [command, *flags, *POSITIONAL[command]]
    if command == "quality" and "--format" in flags:
        arguments.remove("--from"), arguments.remove("llava")
    namespace = vars(build_parser().parse_args(arguments))
    namespace.pop("func")
    return namespace


@pytest.mark.parametrize("command, old, new", ALIASES, ids=[f"{c}{o[0]}" + (f"={o[1]}" if len(o) > 1 else "") for c, o, _ in ALIASES])
def test_an_old_flag_warns_and_means_its_new_name(command, old, new, capsys):
    assert _parsed(command, new) == _parsed(command, old)
    err = capsys.readouterr().err
    assert err.count("is deprecated") == 1, err
    assert f"hf-mmbuilder {command}: warning: {old[0]} is deprecated; use " in err
    # Hidden: the help lists only the new spelling.
    help_text = build_parser()._subparsers._group_actions[0].choices[command].format_help()
    assert f" {old[0]} " not in help_text and f" {old[0]}\n" not in help_text
    assert all(f" {flag}" in help_text for flag in new if flag.startswith("--"))


def test_drop_non_alnum_warns_and_keeps_its_own_rule(tmp_path, capsys):
    source = tmp_path / "in.jsonl"
    Dataset.from_dict({"text": ["room 101!", "room 102", "room 101"]}).to_json(str(source))
    out = tmp_path / "out.parquet"
    with pytest.warns(FutureWarning, match="drop_non_alnum"):
        assert main(["dedup", "--drop-non-alnum", "--return-clusters", str(source), str(out)]) == 0
    assert pq.read_table(out).column("cluster_id").to_pylist() == [0, 1, 0]
    assert "--drop-non-alnum is deprecated; use --ignore-non-character" in capsys.readouterr().err
    # Data-Juicer's rule drops the digits too.
    assert main(["dedup", "--ignore-non-character", "--return-clusters", str(source), str(out)]) == 0
    assert pq.read_table(out).column("cluster_id").to_pylist() == [0, 0, 0]
    assert "deprecated" not in capsys.readouterr().err


def test_a_new_flag_does_not_warn(capsys):
    _parsed("dedup", ["--jaccard-threshold", "0.5", "--return-clusters", "--from", "llava"])
    assert capsys.readouterr().err == ""


def test_dedup_defaults_to_exact_like_the_api_and_says_why():
    assert build_parser().parse_args(["dedup", "in.jsonl", "out.jsonl"]).method == "exact"
    help_text = " ".join(build_parser()._subparsers._group_actions[0].choices["dedup"].format_help().split())
    assert "default: exact, the safer default: only identical rows; --method minhash for near duplicates" in help_text


@pytest.mark.parametrize("command", ["convert", "dedup", "embed", "publish", "quality", "select"])
def test_every_command_that_reads_a_dataset_has_the_shared_input_arguments(command):
    help_text = build_parser()._subparsers._group_actions[0].choices[command].format_help()
    for flag in ("--from", "--media-root", "--on-error", "--num-proc", "--cache-dir", "--load-option"):
        assert f"{flag} " in help_text, (command, flag)
    # Free keyword arguments of the API, where flags do not cover them all.
    assert ("--option NAME=JSON" in help_text) == (command in ("convert", "dedup", "quality"))


def _rows(path):
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


TEXTS = ["the cat sat on the mat today", "The cat sat on the mat today", "a dog ran", "the cat sat on the mat today"]


def test_old_dedup_flags_give_the_same_output_as_the_new_ones(tmp_path, capsys):
    source = tmp_path / "in.jsonl"
    Dataset.from_dict({"text": TEXTS}).to_json(str(source))
    old, new = tmp_path / "old.parquet", tmp_path / "new.parquet"
    assert main(["dedup", "--method", "minhash", "--threshold", "0.5", "--num-perm", "64", "--clusters", "--param", "seed=7",
                 str(source), str(old)]) == 0
    assert main(["dedup", "--method", "minhash", "--jaccard-threshold", "0.5", "--num-permutations", "64", "--return-clusters",
                 "--option", "seed=7", str(source), str(new)]) == 0
    assert pq.read_table(old).equals(pq.read_table(new))
    assert pq.read_table(new).column("cluster_id").to_pylist() == [0, 0, 2, 0]
    err = capsys.readouterr().err
    assert all(f"{flag} is deprecated" in err for flag in ("--threshold", "--num-perm", "--clusters", "--param"))


def test_the_dedup_default_keeps_near_duplicates(tmp_path, capsys):
    source, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    Dataset.from_dict({"text": TEXTS}).to_json(str(source))
    assert main(["dedup", str(source), str(out)]) == 0
    assert [row["text"] for row in _rows(out)] == TEXTS[:3]
    assert capsys.readouterr().out.startswith("exact: 4 rows, 3 kept, 1 duplicates")


def test_lowercase_applies_to_both_text_methods(tmp_path):
    source = tmp_path / "in.jsonl"
    Dataset.from_dict({"text": ["Hello World", "hello world"]}).to_json(str(source))
    assert main(["dedup", "--lowercase", str(source), str(tmp_path / "exact.jsonl")]) == 0
    assert len(_rows(tmp_path / "exact.jsonl")) == 1
    assert main(["dedup", "--method", "minhash", "--no-lowercase", "--window-size", "1", str(source), str(tmp_path / "near.jsonl")]) == 0
    assert len(_rows(tmp_path / "near.jsonl")) == 2


def test_select_reads_a_format_with_from_and_writes_json_lines(tmp_path, capsys):
    source = tmp_path / "in.jsonl"
    Dataset.from_dict({"text": ["a", "b", "c"], "embedding": [[1.0, 0.0], [0.0, 1.0], [0.7, 0.7]]}).to_json(str(source))
    out = tmp_path / "out.jsonl"
    assert main(["select", str(source), str(out), "-k", "2", "--metric", "l2", "--order-column", "rank"]) == 0
    assert [row["rank"] for row in _rows(out)] == [0, 1]
    # Through a format's loader: DJ keeps unknown columns in `extra`, so the embeddings come from a file.
    np.save(tmp_path / "emb.npy", np.array([[1.0, 0.0], [0.0, 1.0], [0.7, 0.7]], dtype=np.float32))
    assert main(["select", str(source), str(out), "-k", "2", "--from", "dj", "--embeddings-file", str(tmp_path / "emb.npy")]) == 0
    assert [row["text"] for row in _rows(out)] == ["a", "b"]
    assert main(["select", str(tmp_path / "missing.parquet"), str(out), "-k", "2"]) == 2
    assert "no such dataset file or folder" in capsys.readouterr().err


def test_reader_refuses_loader_options_without_a_format(tmp_path, capsys):
    source = tmp_path / "in.jsonl"
    Dataset.from_dict({"text": ["a"]}).to_json(str(source))
    assert main(["dedup", "--media-root", str(tmp_path), str(source), str(tmp_path / "o.jsonl")]) == 2
    assert "--media-root and loader options apply to files of --from FORMAT" in capsys.readouterr().err
    assert main(["dedup", str(tmp_path / "in.csv"), str(tmp_path / "o.jsonl")]) == 2
    assert "cannot tell the format of" in capsys.readouterr().err
