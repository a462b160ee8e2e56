"""The compiled caption paths (kernels/caption_parse.py for WavCaps, Video-ChatGPT, InternVid and
MSR-VTT JSON lines; Arrow's CSV reader for plain Youku-mPLUG files) give exactly the rows of the
careful path (``fast_path=False``), on every shared real sample and on generated edge cases, bad
records included (``on_error="keep"``: the same rows, errors and kept source text)."""

import json

import numpy as np
import pytest

import hf_mmbuilder
from hf_mmbuilder.kernels import caption_parse

SAMPLES = [
    ("wavcaps", "wavcaps/soundbible_sb_final.json"),
    ("wavcaps", "wavcaps/clotho_test_5captions.json"),
    ("wavcaps", "wavcaps/wavcaps_audioset_sl.json"),
    ("wavcaps", "wavcaps/wavcaps_bbc_sound_effects.json"),
    ("wavcaps", "wavcaps/wavcaps_freesound.json"),
    ("video_chatgpt", "video_chatgpt/video_chatgpt_VideoInstruct100K.json"),
    ("internvid", "internvid/internvid_10m_flt.jsonl"),
    ("msrvtt", "msrvtt/msrvtt_hf_alexzigma_row.jsonl"),
    ("youku", "youku/youku_classification_train.csv"),
    ("youku", "youku/youku_pretrain.csv"),
    ("youku", "youku/youku_retrieval_train.csv"),
]


def _both(format_name, source, tmp_path, **options):
    fast = hf_mmbuilder.load(format_name, str(source), split="train", cache_dir=str(tmp_path / "fast"), **options)
    careful = hf_mmbuilder.load(format_name, str(source), split="train", cache_dir=str(tmp_path / "careful"), fast_path=False, **options)
    assert fast.column_names == careful.column_names
    for name in fast.column_names:
        assert fast[name] == careful[name], name
    return fast


@pytest.mark.parametrize("format_name, relative", SAMPLES)
def test_real_samples_fast_equals_careful(shared_data, tmp_path, format_name, relative):
    source = shared_data / "formats" / relative
    rows = _both(format_name, source, tmp_path)
    if source.suffix == ".csv":
        expected = len(source.read_text(encoding="utf-8").splitlines()) - 1
    elif source.suffix == ".jsonl":
        expected = len(source.read_text(encoding="utf-8").splitlines())
    else:
        document = json.loads(source.read_text(encoding="utf-8"))
        expected = len(document["data"] if isinstance(document, dict) else document)
    assert len(rows) == expected


# Records whose every byte the kernel must either convert as the careful path does or leave to it.
EDGE_VALUES = [
    "plain",
    "",
    'quote " backslash \\ slash / tab \t newline \n',
    "é ü 中文 😀",
    "\u2028\u2029 \x7f",
    "caption with <__dj__video> token",
    "caption with <|__dj__eoc|>",
]


def _edge_records(required: dict) -> list:
    """Records built around ``required`` (the format's named string fields): every edge value in
    every named field, extra members of every JSON type, and bad records."""
    records = []
    for value in EDGE_VALUES:
        for key in required:
            records.append(json.dumps({**required, key: value}, ensure_ascii=False))
            records.append(json.dumps({**required, key: value}, ensure_ascii=True))
    for key in required:
        # A DJ token spelled with an escape inside it: only its decoded text shows the token.
        escaped = json.dumps({**required, key: "@"})
        records.append(escaped.replace('"@"', '"see <__dj\\u005f_video> here"'))
    extras = [
        '"n": 1', '"f": 4.29296875', '"e": 1e5', '"E": -2.5E-3', '"huge": 1e400',
        '"z": -0', '"nul": null', '"t": true', '"list": [1, "a", {"b": [null]}]', '"empty": {}', '"s": "x\\u00e9\\ud83d\\ude00"',
        '"deep": ' + "[" * 130 + "]" * 130, '"bad": NaN', '"sp" :  [ 1 , 2 ] ',
        '"tru": tru', '"comma": [1,]', '"zero": 01', '"escape": "\\q"', '"colon": {"a" 1}', '"dot": 1.', '"o": {"a": [{}, [], "}"]}',
    ]
    body = ", ".join(f'"{key}": {json.dumps(value)}' for key, value in required.items())
    for extra in extras:
        records.append("{" + body + ", " + extra + "}")
        records.append("{" + extra + ", " + body + "}")
    first = next(iter(required))
    records += [
        "{" + body + ', "' + first + '": "twice"}',
        "{" + body.replace(f'"{first}"', '"' + "\\u00" + format(ord(first[0]), "02x") + first[1:] + '"', 1) + "}",
        "{" + body.replace(json.dumps(required[first]), "null", 1) + "}",
        "{" + body.replace(json.dumps(required[first]), "12", 1) + "}",
        "{" + ", ".join(f'"{key}": {json.dumps(value)}' for key, value in list(required.items())[1:]) + "}",
        "[1, 2]",
        '"a string"',
        "{" + body + ", }",
        "{" + body + "} x",
        "{}",
        "{" + body + "}",
    ]
    return records


JSON_LINES = {
    "internvid": {"YoutubeID": "qJrOyggIB-w", "Start_timestamp": "00:07:33.689", "End_timestamp": "00:07:51.085", "Caption": "a screen shot"},
    "msrvtt": {"video_id": "video6513", "caption": "a family is having conversation"},
    "video_chatgpt": {"q": "What happens?", "a": "A man sails.", "video_id": "v_k_ZXmr8pmrs"},
}


@pytest.mark.parametrize("format_name", sorted(JSON_LINES))
def test_json_lines_edge_cases_fast_equals_careful(tmp_path, format_name):
    lines = _edge_records(JSON_LINES[format_name])
    lines += [line.replace('"', '"\xff', 1) for line in lines[:2]]  # invalid UTF-8 in a key
    if format_name == "internvid":
        lines.append(json.dumps({**JSON_LINES["internvid"], "Start_timestamp": "00:09:00.000"}))  # ends before it starts
        lines.append(json.dumps({**JSON_LINES["internvid"], "Start_timestamp": "0:0:0\u0661"}))  # a digit RE2 does not take
    if format_name == "video_chatgpt":
        lines.append(json.dumps({**JSON_LINES["video_chatgpt"], "q": "a \n[[a]]:b"}))
    source = tmp_path / f"{format_name}.jsonl"
    source.write_bytes("\n".join(lines).encode("utf-8", "surrogateescape").replace(b'"\xc3\xbf', b'"\xff') + b"\n")
    rows = _both(format_name, source, tmp_path, on_error="keep")
    errors = rows["record_errors"]
    assert len(rows) == len(lines)
    # The last generic record is clean; the bad ones are kept with their reasons.
    assert errors[len(lines) - 1 - (3 if format_name == "internvid" else 2 if format_name == "video_chatgpt" else 1) - 1] is None
    assert sum(error is not None for error in errors) >= 9


@pytest.mark.parametrize("options", [{}, {"video_special_token_insert_pos": "random"}, {"keep_other_fields": False, "sent_separator": "|"}])
def test_json_array_with_bad_records_fast_equals_careful(tmp_path, options):
    lines = _edge_records(JSON_LINES["video_chatgpt"])
    source = tmp_path / "chatgpt.json"
    source.write_text("[\n" + ",\n".join(lines[:-10] + lines[-1:]) + "\n]", encoding="utf-8")
    _both("video_chatgpt", source, tmp_path, on_error="skip", **options)


@pytest.mark.parametrize("options", [{}, {"str_id": False}, {"target_field": "title", "add_target_field_token": True}])
def test_wavcaps_edge_cases_fast_equals_careful(tmp_path, options):
    required = {"id": "2219", "caption": "An airplane is landing.", "title": "Airplane"}
    records = _edge_records(required)
    # Parsed whole, the document must be valid: its bad records here are bad in type only.
    valid = [record for record in records if _is_json(record)]
    valid += ['{"id": 7, "caption": "int id"}', '{"id": 0, "caption": "zero"}', '{"id": " a.b.wav ", "caption": "spaced"}',
              '{"id": "x", "caption": "c", "wav": "w.wav"}', '{"id": 1.5, "caption": "float id"}', '{"id": "r", "caption_1": "a", "caption_2": "b"}',
              '{"id": "b", "caption": "c", "category": "[\'Nature\']"}', '{"id": "f", "caption": "c", "tags": ["a"]}']
    source = tmp_path / "wavcaps.json"
    source.write_text('{"num_captions_per_audio": 1, "data": [\n' + ",\n".join(valid) + '\n], "tail": {"k": [1]}}', encoding="utf-8")
    (tmp_path / "audio" / "sub").mkdir(parents=True)
    (tmp_path / "audio" / "2219.flac").touch()
    (tmp_path / "audio" / "sub" / "7.wav").touch()
    rows = _both("wavcaps", source, tmp_path, on_error="keep", wavcaps_audio_path="audio", **options)
    assert len(rows) == len(valid)
    assert "audio/2219.flac" in {paths[0] for paths in rows["audios"] if paths}
    if "target_field" not in options:
        assert set(rows["subset"]) - {None} == {"retrieval", "bbc_sound_effects", "freesound", "soundbible", "audioset_sl"}


def _is_json(text: str) -> bool:
    try:
        json.loads(text)
    except ValueError:
        return False
    return "NaN" not in text and "1e400" not in text and "[[[" not in text


YOUKU_CASES = {
    "plain": 'video_id:FILE,title,label\nv/a.mp4,"a, ""quoted"" title",x\r\nv/b.mp4,"two\nlines and\r\nthree",y\nv/c.mp4,é 中文 😀,x\n',
    "empty media": "video_id:FILE,title,label\nv/a.mp4,t,x\n,t,y\n",
    "bad byte": b"video_id:FILE,title,label\nv/a.mp4,t\xff,x\nv/b.mp4,t,y\n",
    "unterminated quote": 'video_id:FILE,title,label\nv/a.mp4,"t,x\nv/b.mp4,t,y\n',
    "quote inside": 'video_id:FILE,title,label\nv/a.mp4,t"x,x\nv/b.mp4,t,y\n',
    "short row": "video_id:FILE,title,label\nv/a.mp4,t\nv/b.mp4,t,y\n",
    "empty line": "video_id:FILE,title,label\nv/a.mp4,t,x\n\nv/b.mp4,t,y\n",
    "dj token": "video_id:FILE,title,label\nv/a.mp4,<__dj__video>,x\n",
    "bom": "\ufeffvideo_id:FILE,title\nv/a.mp4,t\n",
    "retrieval": "clip_name:FILE,caption\nv/a.mp4,c\nv/b.mp4,\n",
}


@pytest.mark.parametrize("case", sorted(YOUKU_CASES))
@pytest.mark.parametrize("options", [{}, {"video_special_token_insert_pos": "random", "add_eoc_at_last": False}])
def test_youku_fast_equals_careful(tmp_path, case, options):
    content = YOUKU_CASES[case]
    source = tmp_path / "youku.csv"
    source.write_bytes(content if isinstance(content, bytes) else content.encode("utf-8"))
    _both("youku", source, tmp_path, on_error="keep", **options)


def test_plain_csv_accepts_only_what_every_reader_reads_alike():
    from hf_mmbuilder.formats.csvfiles import plain_csv

    assert plain_csv(b'a,b\n1,"x\n""y"""\r\n2,')
    assert plain_csv(b"a,b\n1,2")
    assert plain_csv(b'a,b\n1,"two\n\nparagraphs"\n')
    assert not plain_csv(b"a,b\n1,2\n\n")
    assert not plain_csv(b"a,b\r\n\r\n1,2\r\n")
    assert not plain_csv(b'a,b\n1,x"y\n')
    assert not plain_csv(b'a,b\n1,"x"y\n')
    assert not plain_csv(b'a,b\n1,"x\n')
    assert not plain_csv(b"a,b\n1,2\r3,4\n")
    assert not plain_csv(b'a,b\n1,"2\r"\n')
    assert not plain_csv(b"a,b\n1\x00,2\n")


@pytest.mark.parametrize("data, expected", [
    (b'a,b\n1,"x,y"\n', True),            # a quoted comma
    (b'a,b\n1,"x\ny"\n', True),           # a quoted line feed
    (b'a,b\r\n1,"x\r\ny"\r\n', True),     # a quoted CRLF
    (b'a,b\n1,"x""y"\n', True),           # a doubled quote
    (b'a,b\n1,""\n', True),               # an empty quoted field
    (b'a,b\n1,"x"', True),                # a quote at the end of the file
    (b'a,b\n"1",2', True),                # a quote opening a line
    (b'a,b\n1,"a*\x02"\n', True),         # the bytes that share the quote's and line feed's search
    (b"", True),
    (b'a,b\n1,x"y\n', False),             # a quote mid-field
    (b'a,b\n1,"x"y\n', False),            # text after a closing quote
    (b'a,b\n1,"x" \n', False),
    (b"a,b\n1,2\r3,4\n", False),          # a bare carriage return
    (b'a,b\n1,"2\r"\n', False),           # a bare carriage return inside quotes
    (b"a,b\n1,2\r", False),               # a carriage return ending the file
    (b"a,b\n1,2\n\n", False),             # an empty line
    (b"\na,b\n1,2\n", False),             # an empty first line
    (b"\r\na,b\n1,2\n", False),
    (b"a,b\r\n\r\n1,2\r\n", False),
    (b'a,b\n1,"two\n\nlines"\n', True),   # an empty line inside quotes is text
    (b"a,b\n1\x00,2\n", False),           # a NUL
    (b'a,b\n1,"x\n', False),              # an odd quote count
    (b'a,b\n1,"x""\n', False),
    (b'"', False),                        # a quote alone at the end of the file
])
@pytest.mark.parametrize("block", [1 << 18, 1, 2, 3, 7])
def test_plain_csv_checks_each_rule(monkeypatch, data, expected, block):
    from hf_mmbuilder.formats import csvfiles

    # Small blocks put the quotes, line ends and their neighbours on the blocks' edges.
    monkeypatch.setattr(csvfiles, "_SEARCH_BLOCK", block)
    assert csvfiles.plain_csv(data) is expected


def test_plain_csv_files_read_by_arrow_as_by_the_csv_module():
    import csv
    import io
    import random

    import pyarrow as pa
    from pyarrow import csv as pa_csv

    from hf_mmbuilder.formats.csvfiles import plain_csv

    rng = random.Random(0)
    pieces = ["a", "b", ",", '"', '"', "\n", "\r\n", "\r", "é", " "]
    accepted = 0
    for _ in range(20_000):
        data = ("h1,h2\n" + "".join(rng.choice(pieces) for _ in range(rng.randint(0, 14)))).encode()
        if not plain_csv(data):
            continue
        try:
            table = pa_csv.read_csv(pa.BufferReader(data), read_options=pa_csv.ReadOptions(column_names=["h1", "h2"], skip_rows=1),
                                    parse_options=pa_csv.ParseOptions(newlines_in_values=True),
                                    convert_options=pa_csv.ConvertOptions(column_types={"h1": pa.string(), "h2": pa.string()},
                                                                          strings_can_be_null=False, quoted_strings_can_be_null=False))
        except pa.ArrowInvalid:
            continue  # a row of another width: Arrow refuses it, and the strict reader reads the file
        rows = list(csv.reader(io.StringIO(data.decode(), newline=""), strict=True))[1:]
        assert [[row["h1"], row["h2"]] for row in table.to_pylist()] == rows, data
        accepted += 1
    assert accepted > 1000


def test_kernel_flags_what_it_cannot_convert_exactly():
    records = [
        b'{"c": "a\\u00e9\\ud83d\\ude00", "n": 1, "o": {"k": [1, 2.5]}}',
        b'{"c": "x", "n": 12345678901234567890}',
        b'{"c": "x", "n": 1e400}',
        b'{"c": "x", "c": "y"}',
        b'{"\\u0063": "x"}',
        b'{"c": 1}',
        b'{"c": "x", "w": 1}',
        b'{"c": "x"} ,',
        b'[{"c": "x"}]',
        b'{"n": 1}',
        b'{"c": "x", "n": 1.5e10, "m": -0}',
        b'{"c": "x", "n": tru}',
        b'{"c": "x", "n": [1,]}',
        b'{"c": "x", "n": 01}',
        b'{"c": "x", "n": "\\q"}',
        b'{"c": "x", "n": {"a" 1}}',
        b'{"c": "x", "n": "\\ud800"}',
        b'{"c": "x", "n": 1.}',
        b'{"c": "x", "n": {"a": [1 2]}}',
    ]
    buf = np.frombuffer(b"".join(records), np.uint8)
    ends = np.cumsum([len(record) for record in records])
    starts = ends - [len(record) for record in records]
    n, size = len(records), len(buf)
    keys, key_offsets = np.frombuffer(b"cw", np.uint8), np.array([0, 1, 2])
    kinds = np.array([caption_parse.STRING, caption_parse.ABSENT], np.int8)
    fields, field_offsets, field_kinds = np.zeros((2, size), np.uint8), np.zeros((2, n + 1), np.int32), np.zeros((2, n), np.int8)
    extra, extra_offsets = np.zeros(size + 2 * n, np.uint8), np.zeros(n + 1, np.int32)
    names, name_offsets, name_lists, status = np.zeros(size, np.uint8), np.zeros(size, np.int32), np.zeros(n + 1, np.int32), np.zeros(n, np.int8)
    caption_parse.parse_captions(buf, starts, ends, keys, key_offsets, kinds, fields, field_offsets, field_kinds,
                                 extra, extra_offsets, names, name_offsets, name_lists, status)
    assert status.tolist() == [0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0] + [1] * 8
    captions = [bytes(fields[0, field_offsets[0, r]:field_offsets[0, r + 1]]).decode() for r in range(n)]
    assert captions == ["aé😀"] + [""] * 9 + ["x"] + [""] * 8
    extras = [bytes(extra[extra_offsets[r]:extra_offsets[r + 1]]) for r in range(n)]
    assert extras == [b'{"n":1,"o":{"k":[1,2.5]}}'] + [b""] * 9 + [b'{"n":1.5e10,"m":-0}'] + [b""] * 8
    keys_of = [[bytes(names[name_offsets[j]:name_offsets[j + 1]]).decode() for j in range(name_lists[r], name_lists[r + 1])] for r in range(n)]
    assert keys_of == [["c", "n", "o"]] + [[]] * 9 + [["c", "n", "m"]] + [[]] * 8


def test_rounded_equals_python_round():
    from hf_mmbuilder.loading_scripts.internvid import rounded

    rng = np.random.default_rng(0)
    values = np.concatenate([
        rng.uniform(0, 1e5, 50_000),
        np.round(rng.uniform(0, 4e5, 50_000), 3),
        rng.integers(0, 10**6, 1000) / 1000 + 0.0000005,  # ties at the 6th decimal
        np.array([0.5e-6, 1.5e-6, 2.5e-6, 2.675, 1e20, -3.0000005, -0.0, np.inf]),
    ])
    for digits in (2, 3, 6):
        expected = np.array([round(float(value), digits) for value in values])
        assert rounded(values, digits).tobytes() == expected.tobytes()


@pytest.mark.parametrize("case", sorted(YOUKU_CASES))
def test_only_plain_youku_files_take_arrows_reader(tmp_path, case):
    from hf_mmbuilder.loading_scripts.youku import plain_table

    content = YOUKU_CASES[case]
    source = tmp_path / "youku.csv"
    source.write_bytes(content if isinstance(content, bytes) else content.encode("utf-8"))
    header = ["clip_name:FILE", "caption"] if case == "retrieval" else ["video_id:FILE", "title", "label"]
    table = plain_table(source.read_bytes(), header)
    # A DJ token (in a caption: the loader leaves the file to the strict path) is no CSV matter.
    rows = {"plain": 3, "empty media": 2, "retrieval": 2, "dj token": 1}
    if case in rows:
        # An empty media cell or a DJ token is left to the strict path by the loader, after Arrow read the file.
        assert table is not None and table.num_rows == rows[case]
        if case == "plain":
            assert table.column("title").to_pylist() == ['a, "quoted" title', "two\nlines and\r\nthree", "é 中文 😀"]
    else:
        assert table is None


@pytest.mark.parametrize("document", [
    '{"n": 1, "data": [{"id": "1", "caption": "a", "data": 2}]}',
    '{"data": [{"id": "1", "caption": "a"}], "data": [{"id": "2", "caption": "b"}]}',
    '{"data": [{"id": "1", "caption": "a"}, {"id": "3", "caption": "c"}], "data": []}',
    '{"name": "data", "data": [{"id": "1", "caption": "a"}]}',
])
def test_wavcaps_data_member_as_the_whole_parse_reads_it(tmp_path, document):
    # A record's own "data" member is a field; a repeated top-level one is the last, as in a dict.
    source = tmp_path / "wavcaps.json"
    source.write_text(document, encoding="utf-8")
    rows = _both("wavcaps", source, tmp_path, on_error="keep")
    assert rows["id"] == [record["id"] for record in json.loads(document)["data"]]


def test_youku_file_bytes_map_a_file_and_read_anything_else(tmp_path):
    import io

    from hf_mmbuilder.loading_scripts.youku import file_bytes

    source, empty = tmp_path / "youku.csv", tmp_path / "empty.csv"
    source.write_bytes(b'video_id:FILE,title\nv.mp4,"a, b"\n')
    empty.write_bytes(b"")
    with open(source, "rb") as handle:
        mapped = file_bytes(handle)
    assert type(mapped) is not bytes and mapped[:] == source.read_bytes()
    with open(empty, "rb") as handle:
        assert file_bytes(handle) == b""
    assert file_bytes(io.BytesIO(b"a,b\n")) == b"a,b\n"
