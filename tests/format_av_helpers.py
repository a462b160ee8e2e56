"""Helpers shared by the audio/video format tests (WavCaps, Video-ChatGPT, Youku, InternVid, MSR-VTT)."""

import csv
import json
import os
import zipfile

import pytest

import hf_mmbuilder
from hf_mmbuilder.errors import RecordError


def read_json(path):
    """Records of a JSON / JSON-lines file as parsed values (a JSON document as one value)."""
    with open(path, encoding="utf-8") as handle:
        if str(path).endswith(".jsonl"):
            return [json.loads(line) for line in handle if line.strip()]
        return json.load(handle)


def read_csv(path):
    """All rows of a CSV file, header included, as lists of cells."""
    with open(path, encoding="utf-8-sig", newline="") as handle:
        return list(csv.reader(handle))


def write_jsonl(path, records):
    with open(path, "w", encoding="utf-8") as handle:
        handle.writelines(json.dumps(record, ensure_ascii=False) + "\n" for record in records)
    return str(path)


def load_and_export(format_name, source, out, cache_dir, num_proc=None, **options):
    """``load`` then ``export`` with the same options; returns the dataset."""
    ds = hf_mmbuilder.load(format_name, str(source), split="train", cache_dir=cache_dir, num_proc=num_proc, **options)
    hf_mmbuilder.export(ds, format_name, str(out), **options)
    return ds


def rejects(path):
    """The entries of a rejects file."""
    with open(path, encoding="utf-8") as handle:
        return [json.loads(line) for line in handle]


def resolved(path, root):
    return os.path.normpath(os.path.join(root, path))


def zip_with_corrupt_member(path, good_name, good_bytes, bad_name, bad_bytes):
    """A zip archive holding a readable member and one whose compressed data is damaged."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(good_name, good_bytes)
        archive.writestr(bad_name, bad_bytes)
    data = bytearray(open(path, "rb").read())
    # The damaged member's local header is followed by its compressed data.
    start = data.index(bad_name.encode()) + len(bad_name) + 8
    data[start : start + 24] = bytes(b ^ 0xFF for b in data[start : start + 24])
    with open(path, "wb") as handle:
        handle.write(bytes(data))
    return str(path)


def check_unreadable_member(format_name, archive, bad_name, good_rows, tmp_path, cache_dir):
    """The damaged member is an error naming it and the archive; with ``on_error="skip"`` the
    other member still loads and the damaged one is in the rejects file."""
    with pytest.raises(RecordError, match=f"cannot read {bad_name} in {archive}"):
        hf_mmbuilder.load(format_name, archive, split="train", cache_dir=cache_dir)
    rejects_path = os.path.join(str(tmp_path), "zip_rejects.jsonl")
    ds = hf_mmbuilder.load(format_name, archive, split="train", cache_dir=cache_dir, on_error="skip", rejects_path=rejects_path)
    assert len(ds) == good_rows and set(ds["source_file"]) == {archive}
    assert f"cannot read {bad_name}" in rejects(rejects_path)[0]["reason"]
