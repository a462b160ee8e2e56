"""The HTML inspection report's data and folder: conversations and documents cut with media in
place, bounded thumbnails and media copies, the overview from every row, duplicate clusters with
text differences, the selection's projection and quotas, rejects, the CLI, publish and the
workflow. The page itself is checked in a real browser by test_inspection_browser.py."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import orjson
import pytest
from datasets import Dataset, DatasetDict
from PIL import Image

import hf_mmbuilder
from hf_mmbuilder.cli import main
from hf_mmbuilder.inspection import build_report, inspect
from hf_mmbuilder.inspection import previews as previews_module
from hf_mmbuilder.inspection.clusters import MAX_MEMBERS, largest_clusters, text_diff
from hf_mmbuilder.inspection.conversation import conversation
from hf_mmbuilder.inspection.previews import Previews
from hf_mmbuilder.output_folder import MANIFEST, OutputFolderError
from hf_mmbuilder.schema import SpecialTokens

from inspection_data import DUPLICATE_A, DUPLICATE_B, FILLER_ROWS, SEARCH_WORD, generated_media, report_dataset, report_rejects

PREFIX = b"window.HF_MMBUILDER_REPORT = "


def report_data(folder: Path) -> dict:
    """The data a report folder's page draws (data.js without its assignment)."""
    raw = (folder / "data.js").read_bytes()
    assert raw.startswith(PREFIX) and raw.endswith(b";\n")
    return orjson.loads(raw[len(PREFIX):-2])


@pytest.fixture
def media(tmp_path) -> tuple[Path, dict]:
    return tmp_path / "media", generated_media(tmp_path / "media")


def test_conversation_turns_documents_and_misaligned_tokens():
    assert conversation("intro\n[[user]]: <__dj__image><__dj__image> two\n[[assistant]]: <__dj__audio>ok<|__dj__eoc|>") == {
        "turns": [[None, [["t", "intro"]]], ["user", [["image", 0], ["image", 1], ["t", " two"]]],
                  ["assistant", [["audio", 0], ["t", "ok"], ["eoc"]]]]}
    # A document: chunks at each end-of-chunk token, images counted across chunks.
    assert conversation("One. <__dj__image><|__dj__eoc|>Two.<|__dj__eoc|><__dj__image> Three.") == {
        "chunks": [[["t", "One. "], ["image", 0]], [["t", "Two."]], [["image", 1], ["t", " Three."]]]}
    assert conversation(None) == {"chunks": []}
    tokens = SpecialTokens(image="<image>", eoc="</s>")
    assert conversation("[[human]]: <image>\nhi</s>", tokens) == {"turns": [["human", [["image", 0], ["t", "\nhi"], ["eoc"]]]]}


def test_text_diff_and_largest_clusters():
    assert text_diff("a red bus, by the bridge", "a red bus by the old bridge") == [
        ["=", "a red bus"], ["-", ","], ["=", " by the "], ["+", "old "], ["=", "bridge"]]
    assert text_diff("same", "same") == [["=", "same"]]
    ids = np.array([0, 1, 2, 1, 4, 0, 2, 1, 8] + [9] * 20)
    clusters, counts = largest_clusters(ids)
    assert [(cluster["id"], cluster["size"]) for cluster in clusters] == [(9, 20), (1, 3), (0, 2), (2, 2)]
    assert clusters[0]["rows"] == list(range(9, 9 + MAX_MEMBERS))
    assert clusters[1]["rows"] == [1, 3, 7]
    assert counts == {"clusters": 4, "duplicate_rows": 19 + 2 + 1 + 1, "largest": 20}


def test_previews_are_bounded_thumbnails_copies_or_links(media, tmp_path, monkeypatch):
    root, names = media
    report = tmp_path / "report"
    previews = Previews(report, report)
    wide = previews.entry("image", "wide.jpg", str(root))
    with Image.open(report / wide["src"]) as thumbnail:
        assert (thumbnail.format, thumbnail.size) == ("JPEG", (256, 128))
    alpha = previews.entry("image", "alpha.png", str(root))
    with Image.open(report / alpha["src"]) as thumbnail:
        # Small images keep their size; transparency is flattened on white.
        assert (thumbnail.mode, thumbnail.size) == ("RGB", (120, 160))
        red, green, blue = thumbnail.getpixel((60, 80))
        assert abs(red - 137) <= 3 and abs(green - 187) <= 3 and abs(blue - 237) <= 3
    assert previews.entry("image", "wide.jpg", str(root)) is wide  # each item is built once
    (root / "broken.jpg").write_bytes((root / "wide.jpg").read_bytes()[:200])
    broken = previews.entry("image", "broken.jpg", str(root))
    assert broken["src"] is None and broken["note"].startswith(f"unreadable image {root / 'broken.jpg'}: OSError")
    missing = previews.entry("image", "ghost.png", str(root))
    assert missing == {"kind": "image", "path": "ghost.png", "src": None,
                       "note": f"cannot read {root / 'ghost.png'}: No such file or directory"}
    audio = previews.entry("audio", "tone.wav", str(root))
    assert audio["src"].endswith(".wav") and (report / audio["src"]).read_bytes() == (root / "tone.wav").read_bytes()
    # Over the per-file bound: linked relative to the report's final folder, not copied.
    monkeypatch.setattr(previews_module, "MEDIA_FILE_BYTES", 1000)
    final = tmp_path / "published" / "inspection"
    linked = Previews(tmp_path / "staging", final).entry("audio", "tone.wav", str(root))
    assert linked["src"] == "../../media/tone.wav" and linked["note"] == "0.0 MB: linked from the report's folder, not copied"
    assert sorted(path.name for path in (report / "media").iterdir()) == sorted([wide["src"][6:], alpha["src"][6:], audio["src"][6:]])


def test_inspect_writes_every_section(media, tmp_path):
    root, names = media
    ds = report_dataset(root, names)
    rejects = report_rejects(tmp_path, ds)
    summary = inspect(ds, tmp_path / "report", clusters="minhash", selection=[0, 3, 5], rejects=rejects, sample=30, seed=1,
                      title="test report")
    rows = len(ds)
    assert summary == {"rows": rows, "rows_shown": 30, "clusters": 1, "selected": 3, "rejects": 2 + len(rejects[1]),
                       "path": str(tmp_path / "report")}
    folder = tmp_path / "report"
    assert sorted(path.name for path in folder.iterdir()) == [MANIFEST, "data.js", "index.html", "media", "report.css", "report.js"]
    data = report_data(folder)
    assert data["title"] == "test report"

    overview = data["overview"]
    assert overview["rows"] == rows == 7 + FILLER_ROWS
    assert overview["sources"] == [{"format": "", "file": "chat.json", "split": "train", "rows": rows - 1},
                                   {"format": "", "file": "docs.jsonl", "split": "train", "rows": 1}]
    assert overview["alignment"] == {"count": 1, "rows": [4]}
    plots = {plot["title"]: plot for plot in overview["plots"]}
    assert list(plots) == ["Text length (characters)", "Turns per row", "Images per row", "Audios per row", "Language",
                           "Image width (pixels)", "Image height (pixels)", "Audio duration (seconds)"]
    assert plots["Turns per row"]["data"] == {"edges": [0, 1, 2, 3], "counts": [1, 0, rows - 1], "log": False, "integer": True}
    assert plots["Images per row"]["data"]["counts"] == [rows - 5, 4, 1]
    assert plots["Language"]["data"] == [["en", rows]]
    assert sum(plots["Image width (pixels)"]["data"]["counts"]) == 6
    assert plots["Audio duration (seconds)"]["data"] == {"edges": [1.0, 1.0], "counts": [1], "log": False, "integer": False}

    # Rows: the seeded sample, each with its conversation or document and media previews in place.
    sampled = np.sort(np.random.default_rng(1).choice(rows, 30, replace=False)).tolist()
    assert [row["row"] for row in data["rows"]] == sampled
    shown = {row["row"]: row for row in data["rows"]}
    for row, view in shown.items():
        assert view["id"] == f"r{row}" and view["split"] == "train"
        assert ("turns" in view) == (row != 2)
    document = next((view for view in data["rows"] if view["row"] == 2), None)
    if document is not None:
        assert document["chunks"][0] == [["t", "A lake at dawn. "], ["image", 0]]
        assert [entry["path"] for entry in document["media"]["image"]] == ["fractal.png", "wide.jpg"]

    # Duplicates: the planted pair is one cluster, the first row kept, the other's edits marked.
    duplicates = data["duplicates"]
    assert (duplicates["clusters"], duplicates["duplicate_rows"], duplicates["largest"]) == (1, 1, 2)
    (cluster,) = duplicates["shown"]
    assert (cluster["id"], cluster["size"], cluster["rows"]) == (1, 2, [1, 5])
    kept, other = cluster["members"]
    assert (kept["row"], kept["kept"], kept["diff"]) == (1, True, [["=", DUPLICATE_A]])
    assert kept["media"]["image"][0]["src"].startswith("media/")
    assert other["kept"] is False
    assert [piece for piece in other["diff"] if piece[0] != "="] == [["-", ","], ["-", "."], ["+", "!"]]
    assert "".join(text for kind, text in other["diff"] if kind != "-") == DUPLICATE_B
    assert "".join(text for kind, text in other["diff"] if kind != "+") == DUPLICATE_A

    # Selection: every row projected (fewer than the point bound), the selected ones marked.
    selection = data["selection"]
    assert (selection["rows"], selection["selected"]) == (rows, 3)
    assert sorted(point[2] for point in selection["points"] if point[3]) == [0, 3, 5]
    assert len(selection["points"]) == rows
    assert sum(quota["rows"] for quota in selection["quotas"]) == rows
    assert sum(quota["selected"] for quota in selection["quotas"]) == 3

    # Rejects: the loader's two bad records with their raw text, the filter's dropped rows.
    loader = data["rejects"]["loader"]
    assert loader["count"] == 2
    assert [(entry["file"].rsplit("/", 1)[-1], entry["record"]) for entry in loader["shown"]] == [("bad_llava.json", 1), ("bad_llava.json", 2)]
    assert json.loads(loader["shown"][0]["raw"]) == {"id": "no-conversations", "image": "b.jpg"}
    filtered = data["rejects"]["filtered"]
    assert filtered["count"] == len(rejects[1]) and filtered["reasons"][0][0] == "text_len"
    assert filtered["shown"][0]["reason"] == rejects[1][0]["__dj__filter__"]
    assert json.loads(filtered["shown"][0]["raw"])["text"] == rejects[1][0]["text"]


def test_report_folder_rules_and_script_safety(tmp_path):
    ds = Dataset.from_dict({"text": ["[[human]]: </script><script>alert(1)</script>\n[[gpt]]: no"]})
    folder = tmp_path / "report"
    inspect(ds, folder)
    data_js = (folder / "data.js").read_text()
    assert "</script>" not in data_js and report_data(folder)["rows"][0]["turns"][0][1] == [["t", "</script><script>alert(1)</script>"]]
    assert report_data(folder)["duplicates"] is None and report_data(folder)["selection"] is None and report_data(folder)["rejects"] is None
    # A second report replaces the first; a folder holding other files is refused.
    inspect(Dataset.from_dict({"text": ["second"]}), folder)
    assert report_data(folder)["rows"][0]["chunks"] == [[["t", "second"]]]
    other = tmp_path / "notes"
    other.mkdir()
    (other / "mine.txt").write_text("keep")
    with pytest.raises(OutputFolderError, match="holds files hf_mmbuilder inspect did not write \\(mine.txt\\)"):
        inspect(ds, other)
    inspect(ds, other, overwrite=True)
    assert (other / "mine.txt").read_text() == "keep" and (other / "index.html").exists()


def test_inspect_inputs_are_checked(tmp_path):
    ds = Dataset.from_dict({"text": ["a", "b"]})
    with pytest.raises(ValueError, match="clusters='nearby' is neither a column of the dataset nor a dedup method"):
        inspect(ds, tmp_path / "r1", clusters="nearby")
    with pytest.raises(ValueError, match="clusters: 2 cluster ids needed \\(one per row\\), got 3"):
        inspect(ds, tmp_path / "r2", clusters=[0, 0, 1])
    with pytest.raises(ValueError, match="selection: row 2 is out of range for 2 rows"):
        inspect(ds, tmp_path / "r3", selection=[2])
    with pytest.raises(ValueError, match="the dataset has no column 'chosen' \\(its columns: text\\)"):
        inspect(ds, tmp_path / "r6", selection="chosen")
    with pytest.raises(ValueError, match="rejects: int is neither a rejects file"):
        inspect(ds, tmp_path / "r4", rejects=[3])
    with pytest.raises(ValueError, match="inspect takes a datasets.Dataset or DatasetDict, got list"):
        inspect([1], tmp_path / "r5")
    assert not any((tmp_path / name).exists() for name in ("r1", "r2", "r3", "r4", "r5", "r6"))


def test_dataset_dict_splits_and_selection_without_embeddings(tmp_path):
    splits = DatasetDict({"train": Dataset.from_dict({"text": ["one", "two", "three"], "keep": [True, False, True]}),
                          "test": Dataset.from_dict({"text": ["four"], "keep": [False]})})
    inspect(splits, tmp_path / "report", selection="keep")
    data = report_data(tmp_path / "report")
    assert data["overview"]["sources"] == [{"format": "", "file": "", "split": "train", "rows": 3},
                                           {"format": "", "file": "", "split": "test", "rows": 1}]
    assert [(row["row"], row["split"]) for row in data["rows"]] == [(0, "train"), (1, "train"), (2, "train"), (3, "test")]
    assert data["selection"] == {"points": [], "quotas": [], "rows": 4, "selected": 2,
                                 "note": "no embeddings ('embedding' is not a column): no projection"}


def test_cli_inspect(media, tmp_path, capsys):
    root, names = media
    ds = report_dataset(root, names)
    clustered = hf_mmbuilder.dedup(ds, "minhash", return_clusters=True)
    clustered.to_parquet(tmp_path / "rows.parquet")
    rejects = report_rejects(tmp_path, ds)
    rejects[1].to_parquet(tmp_path / "dropped.parquet")
    np.save(tmp_path / "chosen.npy", np.array([5, 0]))
    assert main(["inspect", str(tmp_path / "rows.parquet"), str(tmp_path / "report"), "--sample", "5",
                 "--selection-file", str(tmp_path / "chosen.npy"), "--rejects", rejects[0], str(tmp_path / "dropped.parquet")]) == 0
    assert capsys.readouterr().out == f"report of {len(ds)} rows (5 shown) -> {tmp_path / 'report'}/index.html\n"
    data = report_data(tmp_path / "report")
    assert [cluster["rows"] for cluster in data["duplicates"]["shown"]] == [[1, 5]]  # the cluster_id column, by default
    assert data["selection"]["selected"] == 2
    assert (data["rejects"]["loader"]["count"], data["rejects"]["filtered"]["count"]) == (2, len(rejects[1]))
    assert main(["inspect", str(tmp_path / "rows.parquet"), str(tmp_path / "other"), "--clusters", "nearby"]) == 2
    assert "clusters='nearby' is neither a column" in capsys.readouterr().err


def test_publish_report_is_a_file_publish_owns(media, tmp_path):
    root, names = media
    ds = report_dataset(root, names).remove_columns(["embedding"])
    with pytest.raises(ValueError, match="report=True writes the inspection report into local_dir"):
        hf_mmbuilder.publish(ds, dry_run=True, report=True)
    result = hf_mmbuilder.publish(ds, local_dir=str(tmp_path / "out"), report={"clusters": "minhash", "sample": 10},
                                  embed_media=False, progress=False)
    folder = tmp_path / "out"
    manifest = json.loads((folder / MANIFEST).read_text())["publish"]
    assert {"inspection/index.html", "inspection/data.js", "inspection/report.js", "inspection/report.css"} <= set(manifest)
    assert [name for name in result.files if name.startswith("inspection/") and not name.startswith("inspection/media/")] == [
        "inspection/data.js", "inspection/index.html", "inspection/report.css", "inspection/report.js"]
    data = report_data(folder / "inspection")
    assert data["overview"]["rows"] == len(ds) and [c["rows"] for c in data["duplicates"]["shown"]] == [[1, 5]]
    # Re-publishing without the report removes it: its files were publish's own.
    hf_mmbuilder.publish(ds, local_dir=str(tmp_path / "out"), embed_media=False, progress=False)
    assert not (folder / "inspection").exists()


def test_validate_quality_writes_the_report(tmp_path):
    photos = tmp_path / "photos"
    photos.mkdir()
    for name, color in (("red", (200, 30, 30)), ("blue", (30, 30, 200))):
        Image.new("RGB", (64, 48), color).save(photos / f"{name}.png")
        (photos / f"{name}.txt").write_text(f"A plain {name} square on a white table, photographed from above.")
    (photos / "tiny.png").write_bytes(b"")
    (photos / "tiny.txt").write_text("An empty file.")
    builder = hf_mmbuilder.MultiModalDatasetBuilder(modalities=["image"], output_dir=str(tmp_path / "out"),
                                                    cache_dir=str(tmp_path / "cache"))
    builder.add_data_source(str(photos))
    builder.generate_instructions(3, ["caption"])
    report = builder.validate_quality()
    data = report_data(tmp_path / "out" / "inspection")
    assert data["title"] == "validate_quality" and data["overview"]["rows"] == report.rows == 3
    images = {row["media"]["image"][0]["path"].rsplit("/", 1)[-1]: row["media"]["image"][0] for row in data["rows"]}
    assert sorted(images) == ["blue.png", "red.png", "tiny.png"]
    assert images["red.png"]["src"].startswith("media/") and images["tiny.png"]["src"] is None
    assert data["rejects"]["filtered"]["count"] == 1 and data["rejects"]["filtered"]["reasons"] == [["unreadable media", 1]]
