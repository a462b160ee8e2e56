"""WavCaps: lossless round trip of every subset, Data-Juicer parity, audio lookup, bad input."""

import json

import pytest
from format_helpers import check_unreadable_member, load_and_export, read_records, rejects, typed, zip_with_corrupt_member

import hf_mmbuilder
from hf_mmbuilder import testing
from hf_mmbuilder.errors import RecordError


REAL = ["soundbible_sb_final", "clotho_test_5captions", "wavcaps_freesound", "wavcaps_bbc_sound_effects", "wavcaps_audioset_sl"]


@pytest.mark.parametrize("name", REAL)
def test_real_files_round_trip_with_types_and_key_order(shared_data, tmp_path, cache_dir, name):
    source = shared_data / "formats" / "wavcaps" / f"{name}.json"
    ds = load_and_export("wavcaps", source, tmp_path / "out.json", cache_dir)
    original, exported = read_records(source), read_records(tmp_path / "out.json")
    assert typed(exported) == typed(original)
    assert list(exported) == list(original)
    assert [list(r) for r in exported["data"]] == [list(r) for r in original["data"]]
    assert len(ds) == len(original["data"]) and hf_mmbuilder.validate_alignment(ds) == []


def test_subsets_are_detected_and_fields_kept_as_written(shared_data, cache_dir):
    folder = shared_data / "formats" / "wavcaps"
    ds = hf_mmbuilder.load("wavcaps", [str(folder / f"{name}.json") for name in REAL], split="train", cache_dir=cache_dir)
    assert set(ds["subset"]) == {"soundbible", "retrieval", "freesound", "bbc_sound_effects", "audioset_sl"}
    bbc = ds.filter(lambda row: row["subset"] == "bbc_sound_effects")
    assert bbc[0]["extra"]["category"] == "['Nature']" and bbc[0]["id"] == "NHU05051026"
    audioset = ds.filter(lambda row: row["subset"] == "audioset_sl")
    assert audioset[0]["audios"] == ["Yb0RFKhbpFJA.flac"]
    clotho = ds.filter(lambda row: row["subset"] == "retrieval")
    assert clotho[0]["caption_keys"] == [f"caption_{k}" for k in range(1, 6)]
    assert clotho[0]["audios"] == ["Clotho/waveforms/test/Santa Motor.wav"]
    assert clotho[0]["text"].count(hf_mmbuilder.EOC_TOKEN) == 5 and clotho[0]["file_extra"] == {"data": None, "num_captions_per_audio": 5}


def test_data_juicer_parity(shared_data, tmp_path, cache_dir):
    source = shared_data / "formats" / "wavcaps" / "soundbible_sb_final.json"
    golden = read_records(shared_data / "dj_golden" / "soundbible_sb_final.dj.jsonl")
    (tmp_path / "audio" / "sub").mkdir(parents=True)
    for number, expected in enumerate(golden):
        # Found recursively, as Data-Juicer's os.walk finds them.
        folder = tmp_path / "audio" / ("sub" if number % 2 else "")
        (folder / f"{expected['id']}.flac").write_bytes(b"")
    ds = hf_mmbuilder.load("wavcaps", str(source), split="train", cache_dir=cache_dir, media_root=str(tmp_path), wavcaps_audio_path="audio")
    assert len(ds) == len(golden)
    assert [row["audios"][0].replace("sub/", "") for row in ds] == [g["audios"][0] for g in golden]
    assert [(row["id"], row["text"]) for row in ds] == [(g["id"], g["text"]) for g in golden]
    hf_mmbuilder.export(ds, "wavcaps", str(tmp_path / "out.json"))
    num_captions = read_records(source)["num_captions_per_audio"]
    for record, expected in zip(read_records(tmp_path / "out.json")["data"], golden):
        meta = {key: value for key, value in expected["__dj__meta__"].items() if not (value == "" and key not in record)}
        assert typed({"num_captions_per_audio": num_captions, **record}) == typed(meta)


@pytest.mark.parametrize("subset", testing.WAVCAPS_SUBSETS)
def test_generated_subsets_with_every_quirk_round_trip(tmp_path, cache_dir, subset):
    source = testing.write_wavcaps_json(str(tmp_path / "in.json"), subset, 10_000, seed=7)
    ds = load_and_export("wavcaps", source, tmp_path / "out.json", cache_dir)
    original, exported = read_records(source), read_records(tmp_path / "out.json")
    assert len(exported["data"]) == 10_000
    assert sum(typed(a) != typed(b) for a, b in zip(original["data"], exported["data"])) == 0
    assert typed({**exported, "data": None}) == typed({**original, "data": None})
    assert set(ds["subset"]) == {subset}


@pytest.mark.parametrize(
    "options",
    [{"target_field": "description", "add_target_field_token": True}, {"add_eoc_at_last": False, "sent_separator": " | ", "str_id": False}],
)
def test_other_options_round_trip(shared_data, tmp_path, cache_dir, options):
    source = shared_data / "formats" / "wavcaps" / "wavcaps_bbc_sound_effects.json"
    ds = load_and_export("wavcaps", source, tmp_path / "out.json", cache_dir, **options)
    assert typed(read_records(tmp_path / "out.json")) == typed(read_records(source))
    if "target_field" in options:
        assert ds[0]["text"].startswith("<__dj__audio>\n[[description]]: Greengrocer Cicada")


def test_audio_found_by_stem_and_edits_survive_export(shared_data, tmp_path, cache_dir):
    source = shared_data / "formats" / "wavcaps" / "wavcaps_audioset_sl.json"
    (tmp_path / "AudioSet" / "x").mkdir(parents=True)
    (tmp_path / "AudioSet" / "x" / "Yb0RFKhbpFJA.wav").write_bytes(b"")
    ds = hf_mmbuilder.load(
        "wavcaps", str(source), split="train", cache_dir=cache_dir, wavcaps_audio_path=str(tmp_path / "AudioSet"), check_media=True
    )
    assert ds["audios"] == [[str(tmp_path / "AudioSet" / "x" / "Yb0RFKhbpFJA.wav")]]
    edited = ds.map(lambda row: {"text": row["text"].replace("man", "person")})
    hf_mmbuilder.export(edited, "wavcaps", str(tmp_path / "out.json"), allowed_media_roots=(str(tmp_path),))
    record = read_records(tmp_path / "out.json")["data"][0]
    assert record["caption"] == "Wind and a person speaking are heard, accompanied by buzzing and ticking."
    dropped = ds.map(lambda row: {"audios": [], "text": row["text"].replace(hf_mmbuilder.AUDIO_TOKEN, "")})
    with pytest.raises(RecordError, match="exactly one audio"):
        hf_mmbuilder.export(dropped, "wavcaps", str(tmp_path / "dropped.json"), allowed_media_roots=(str(tmp_path),))


def test_streaming_and_provenance(shared_data, cache_dir):
    folder = shared_data / "formats" / "wavcaps"
    files = [str(folder / "wavcaps_freesound.json"), str(folder / "wavcaps_bbc_sound_effects.json")]
    ds = hf_mmbuilder.load("wavcaps", files, split="train", cache_dir=cache_dir, num_proc=2)
    assert sorted(ds["source_file"]) == sorted([files[0]] + [files[1]] * 2)
    assert sorted(map(str, hf_mmbuilder.load("wavcaps", files, split="train", streaming=True))) == sorted(map(str, ds.to_list()))


# -- bad input -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "record, reason",
    [
        ({"caption": "no id"}, "record has no 'id'"),
        ({"id": "1"}, "record has no 'caption'"),
        ({"id": "1", "caption": ["a"]}, "'caption' must be a string, got list"),
        ({"id": 1.5, "caption": "x"}, "'id' must be a string or an integer"),
    ],
)
def test_bad_records_raise_skip_or_keep(tmp_path, cache_dir, record, reason):
    source = tmp_path / "bad.json"
    source.write_text(json.dumps({"num_captions_per_audio": 1, "data": [{"id": "0", "caption": "ok"}, record]}), encoding="utf-8")
    with pytest.raises(RecordError, match=f"bad.json: record 1: {reason}"):
        hf_mmbuilder.load("wavcaps", str(source), split="train", cache_dir=cache_dir)
    rejects_path = tmp_path / "rejects.jsonl"
    ds = hf_mmbuilder.load("wavcaps", str(source), split="train", cache_dir=cache_dir, on_error="skip", rejects_path=str(rejects_path))
    assert ds["id"] == ["0"] and json.loads(rejects(rejects_path)[0]["raw"]) == record
    kept = hf_mmbuilder.load("wavcaps", str(source), split="train", cache_dir=cache_dir, on_error="keep")
    assert reason in kept["record_errors"][1][0]


def test_malformed_document_and_missing_audio(tmp_path, cache_dir):
    broken = tmp_path / "broken.json"
    broken.write_text('{"num_captions_per_audio": 1, "data": [{"id": "1", "caption": "x"}', encoding="utf-8")
    with pytest.raises(RecordError, match=r"broken\.json: file unreadable: malformed JSON: Input data was truncated; records unreachable: unknown"):
        hf_mmbuilder.load("wavcaps", str(broken), split="train", cache_dir=cache_dir)
    layout = tmp_path / "layout.json"
    layout.write_text('[{"id": "1", "caption": "x"}]', encoding="utf-8")
    with pytest.raises(RecordError, match='a "data" list of records'):
        hf_mmbuilder.load("wavcaps", str(layout), split="train", cache_dir=cache_dir)
    source = tmp_path / "in.json"
    source.write_text(json.dumps({"data": [{"id": "a.wav", "caption": "x"}, {"id": "b", "caption": "y"}]}), encoding="utf-8")
    (tmp_path / "a.flac").write_bytes(b"")
    with pytest.raises(RecordError, match=r"record 1: media file 'b.flac' not found"):
        hf_mmbuilder.load("wavcaps", str(source), split="train", cache_dir=cache_dir, check_media=True)
    ds = hf_mmbuilder.load("wavcaps", str(source), split="train", cache_dir=cache_dir, check_media=True, on_error="skip")
    assert ds["audios"] == [["a.flac"]]


def test_unreadable_zip_member(tmp_path, cache_dir):
    document = open(testing.write_wavcaps_json(str(tmp_path / "in.json"), "freesound", 200, seed=3), "rb").read()
    archive = zip_with_corrupt_member(tmp_path / "wavcaps.zip", "good.json", document, "bad.json", document)
    check_unreadable_member("wavcaps", archive, "bad.json", 200, tmp_path, cache_dir)
