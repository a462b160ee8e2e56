"""Helpers shared by the format tests: reading and writing source files, load / export wrappers,
rejects files, damaged archives."""

import csv
import json
import os
import zipfile

import pytest

import hf_mmbuilder
from hf_mmbuilder.errors import RecordError


def read_records(path):
    """Records of a JSON / JSON-lines file as parsed values (a JSON document or array as one
    value); a file that is not one JSON value is read as JSON lines, whatever its suffix."""
    with open(path, encoding="utf-8") as handle:
        text = handle.read()
    if not str(path).endswith(".jsonl"):
        try:
            return json.loads(text)
        except json.JSONDecodeError:
            pass
    return [json.loads(line) for line in text.split("\n") if line.strip()]


def read_csv(path):
    """All rows of a CSV file, header included, as lists of cells."""
    with open(path, encoding="utf-8-sig", newline="") as handle:
        return list(csv.reader(handle))


def write_jsonl(path, records):
    with open(path, "w", encoding="utf-8") as handle:
        handle.writelines(json.dumps(record, ensure_ascii=False) + "\n" for record in records)
    return str(path)


def write_json(path, records, lines=False):
    """A JSON array (indented, as LLaVA ships it) or, with ``lines``, JSON lines."""
    if lines:
        return write_jsonl(path, records)
    with open(path, "w", encoding="utf-8") as handle:
        json.dump(records, handle, ensure_ascii=False, indent=2)
    return str(path)


def write_csv(path, rows):
    with open(path, "w", encoding="utf-8", newline="") as handle:
        csv.writer(handle).writerows(rows)
    return str(path)


def typed(value):
    """A parsed JSON value with every number tagged by its type, so 5 and 5.0 differ."""
    if isinstance(value, dict):
        return {key: typed(item) for key, item in value.items()}
    if isinstance(value, list):
        return [typed(item) for item in value]
    return (type(value).__name__, value)


def load(format_name, path, cache_dir, **options):
    """``hf_mmbuilder.load`` of one file (or a list of files), split ``train``."""
    return hf_mmbuilder.load(format_name, path if isinstance(path, list) else str(path), split="train", cache_dir=cache_dir, **options)


def export_records(format_name, ds, tmp_path, name="out.jsonl", **options):
    """Export ``ds`` to ``tmp_path / name`` and read the records back."""
    out = tmp_path / name
    hf_mmbuilder.export(ds, format_name, str(out), **options)
    return read_records(out)


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
