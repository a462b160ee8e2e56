"""MMC4's compiled path (kernels/mmc4_parse.py) equals the careful path: on every shared real
document and on generated edge cases, the documents it takes give the careful path's table row for
row, and the ones it must not take (anything it is not sure about) are left to the careful path,
which reports or converts them."""

import json
import random

import numpy as np
import pytest

import hf_mmbuilder
from hf_mmbuilder import testing
from hf_mmbuilder.errors import ERRORS_COLUMN, ErrorPolicy
from hf_mmbuilder.formats.builder import ColumnBuffer
from hf_mmbuilder.formats.records import iter_batches
from hf_mmbuilder.kernels import mmc4_parse
from hf_mmbuilder.loading_scripts.mmc4 import Document, Mmc4

OPTION_SETS = ({}, {"image_special_token_insert_pos": "after", "image_dir": "img", "sent_separator": "\n", "add_eoc_at_last": False})
IMAGE = '{"image_name": "a.jpg", "matched_text_index": 0}'

# Documents the compiled path takes: each is built exactly as the careful path builds it.
TAKEN = [
    '{"url": "u", "text_list": ["a\\"b\\\\c\\/d\\n\\t\\u00e9\\ud83d\\ude00", ""], "image_info": [' + IMAGE + '], "similarity_matrix": [[0.5, 1]]}',
    '{"text_list": ["é 中文 😀 <__dj__", "eoc|>"], "image_info": [], "similarity_matrix": [], "could_have_url_duplicate": -3}',
    '{"text_list": [], "image_info": [], "similarity_matrix": []}',
    # Key order, whitespace (space, tab, CR) around every token.
    ' \t{ "similarity_matrix" :[ [ -0.0 ,1E2 , 0.1e-5, -0 ] ] , "image_info":[ { "matched_text_index" : 3 , "image_name":"x\\/y.png" } ] ,'
    '\r"text_list" : [ "s0","s1" ,"s2","s3" ] , "could_have_url_duplicate" : 12 } ',
    # Other members, top level and per image, of every JSON kind (extra, and image_info rewritten as the careful path does).
    '{"doc_id": 7, "text_list": ["a"], "meta": {"k": [1.5, null, true, false, "x\\u0041", {}, []]}, "image_info": [{"image_name": "a.jpg", '
    '"raw_url": "http://x/\\u00e9.jpg", "matched_text_index": 0, "matched_sim": 3.25e-1, "face_detections": [[0.1, 0.2, 0.3, 0.4, 0.99]], '
    '"clip_score": -1.5E+2}], "similarity_matrix": [[0.325]], "tags": ["t"], "score": 0.30000000000000004}',
    '{"text_list": ["a", "b"], "image_info": [{"image_name": "a.jpg", "matched_text_index": 1, "face_detections": '
    + "[" * 40 + "]" * 40 + '}, {"image_name": "b.jpg", "matched_text_index": 1}, {"image_name": "c.jpg", "matched_text_index": 0}], '
    '"similarity_matrix": [[1, 2], [3, 4], [5, 6]], "url": "https://x.org/a\\"b\\\\c/é\\u2028", "could_have_url_duplicate": 0}',
]

# Documents it leaves to the careful path, and why.
LEFT = [
    '{"text_list": ["has <__dj__image> in it"], "image_info": [], "similarity_matrix": []}',  # a DJ token in a sentence
    '{"text_list": ["<|__dj__eoc|>"], "image_info": [], "similarity_matrix": []}',
    '{"text_list": ["\\ud800"], "image_info": [], "similarity_matrix": []}',  # a lone surrogate
    '{"text_list": ["\\x"], "image_info": [], "similarity_matrix": []}',  # a bad escape
    '{"te\\u0078t_list": ["a"], "image_info": [], "similarity_matrix": []}',  # an escaped key
    '{"text_list": ["a"], "text_list": ["b"], "image_info": [], "similarity_matrix": []}',  # a repeated member
    '{"text_list": ["a"], "image_info": [], "similarity_matrix": [], "url": null}',
    '{"text_list": ["a"], "image_info": [], "similarity_matrix": [], "url": 5}',
    '{"text_list": ["a"], "image_info": [], "similarity_matrix": [], "could_have_url_duplicate": -0}',
    '{"text_list": ["a"], "image_info": [], "similarity_matrix": [], "could_have_url_duplicate": true}',
    '{"text_list": ["a"], "image_info": [], "similarity_matrix": [], "could_have_url_duplicate": 1.0}',
    '{"text_list": ["a"], "image_info": [{"image_name": "a.jpg", "matched_text_index": 1.0}], "similarity_matrix": [[1]]}',
    '{"text_list": ["a"], "image_info": [{"image_name": "a.jpg", "matched_text_index": 00}], "similarity_matrix": [[1]]}',
    '{"text_list": ["a"], "image_info": [{"image_name": "a.jpg", "matched_text_index": -1}], "similarity_matrix": [[1]]}',
    '{"text_list": ["a"], "image_info": [{"image_name": "a.jpg", "matched_text_index": 1}], "similarity_matrix": [[1]]}',  # out of range
    '{"text_list": ["a"], "image_info": [{"image_name": "a.jpg", "matched_text_index": true}], "similarity_matrix": [[1]]}',
    '{"text_list": ["a"], "image_info": [{"image_name": null, "matched_text_index": 0}], "similarity_matrix": [[1]]}',
    '{"text_list": ["a"], "image_info": [{"matched_text_index": 0}], "similarity_matrix": [[1]]}',
    '{"text_list": ["a"], "image_info": [{"image_name": "a", "image_name": "b", "matched_text_index": 0}], "similarity_matrix": [[1]]}',
    '{"text_list": ["a"], "image_info": [' + IMAGE + '], "similarity_matrix": [[1, 2]]}',  # a row longer than the sentences
    '{"text_list": ["a"], "image_info": [' + IMAGE + '], "similarity_matrix": []}',  # fewer rows than images
    '{"text_list": ["a"], "image_info": [' + IMAGE + '], "similarity_matrix": [[null]]}',
    '{"text_list": ["a"], "image_info": [' + IMAGE + '], "similarity_matrix": [[1e400]]}',
    '{"text_list": ["a"], "image_info": [' + IMAGE + '], "similarity_matrix": null}',
    '{"text_list": ["a"], "image_info": [' + IMAGE + ']}',  # no matrix
    '{"text_list": ["a", 5], "image_info": [], "similarity_matrix": []}',
    '{"text_list": ["a"], "image_info": [{"image_name": "a.jpg", "matched_text_index": 0, "raw_url": tru}], "similarity_matrix": [[1]]}',
    '{"text_list": ["a"], "image_info": [{"image_name": "a.jpg", "matched_text_index": 0, "s": 1.}], "similarity_matrix": [[1]]}',
    '{"text_list": ["a"], "image_info": [{"image_name": "a.jpg", "matched_text_index": 0, "s": [1,]}], "similarity_matrix": [[1]]}',
    '{"text_list": ["a"], "image_info": [{"image_name": "a.jpg", "matched_text_index": 0, "s": {"a" 1}}], "similarity_matrix": [[1]]}',
    '{"text_list": ["a"], "image_info": [{"image_name": "a.jpg", "matched_text_index": 0, "d": '
    + "[" * 70 + "]" * 70 + '}], "similarity_matrix": [[1]]}',  # deeper than the compiled check goes
    '{"text_list": ["a"], "image_info": [], "similarity_matrix": [], "big": 1234567890123456789}',  # more digits than it settles
    '{"text_list": ["a"], "image_info": [], "similarity_matrix": []} x',
    '["text_list"]',
]


def compiled_positions_and_tables(source: str, tmp_path, options: dict):
    """Per batch: the positions the compiled path took, and its table and the careful path's for them."""
    builder = Mmc4(cache_dir=str(tmp_path / "cache"), data_files=source, **options)
    shard = builder._plan_file(0, source, source, str(tmp_path))[0]
    constants = {"audios": [], "videos": [], "media_root": "m", "source_file": "s", "source_style": None}
    for batch in iter_batches(shard.index, shard.first, shard.stop, Document, open, decode=False):
        fast, positions = builder._compiled_table(batch, ColumnBuffer(builder.info.features, constants))
        if not positions:
            yield batch, positions, None, None
            continue
        decoded = {k: batch.decode(k) for k in positions}
        slow, kept = builder._careful_table(batch, decoded, positions, ColumnBuffer(builder.info.features, constants), shard,
                                            ErrorPolicy(), random.Random(0))
        assert kept == positions
        yield batch, positions, fast, slow


@pytest.mark.parametrize("options", OPTION_SETS)
def test_every_shared_real_document_takes_the_compiled_path_exactly(shared_data, tmp_path, options):
    for path in sorted((shared_data / "formats" / "mmc4").glob("*.jsonl")):
        n_documents = sum(1 for line in path.read_bytes().splitlines() if line.strip())
        taken = 0
        for batch, positions, fast, slow in compiled_positions_and_tables(str(path), tmp_path, options):
            assert positions == list(range(len(batch.indexes))), path.name
            assert fast.equals(slow), path.name
            taken += len(positions)
        assert taken == n_documents


@pytest.mark.parametrize("options", OPTION_SETS)
def test_edge_cases_are_taken_exactly_or_left_to_the_careful_path(tmp_path, options):
    source = tmp_path / "edges.jsonl"
    source.write_bytes(("\n".join(TAKEN + LEFT) + "\n").encode() + b'{"text_list": ["\xff"], "image_info": [], "similarity_matrix": []}\n')
    (batch, positions, fast, slow), = compiled_positions_and_tables(str(source), tmp_path, options)
    assert positions == list(range(len(TAKEN)))
    assert fast.equals(slow)
    rows = fast.to_pylist()
    assert rows[0]["text_list"] == ['a"b\\c/d\n\té😀', ""] and rows[0]["url"] == "u"
    assert rows[4]["extra"] == json.dumps({"doc_id": 7, "meta": {"k": [1.5, None, True, False, "xA", {}, []]}, "tags": ["t"],
                                           "score": 0.30000000000000004}, separators=(",", ":"))
    assert rows[3]["similarity_matrix"] == [[-0.0, 100.0, 1e-06, 0.0]] and rows[3]["could_have_url_duplicate"] == "12"


@pytest.mark.parametrize("on_error", ["keep", "skip"])
def test_whole_load_with_edge_cases_equals_the_careful_load(tmp_path, on_error):
    source = tmp_path / "edges.jsonl"
    source.write_text("\n".join(TAKEN + LEFT) + "\n", encoding="utf-8")
    loads = [hf_mmbuilder.load("mmc4", str(source), split="train", cache_dir=str(tmp_path / name), fast_path=fast, on_error=on_error)
             for name, fast in (("fast", True), ("careful", False))]
    assert loads[0].data.table.equals(loads[1].data.table)
    # The careful path converts the left documents whose key is escaped or repeated, whose url is
    # null or a number, whose duplicate flag is -0, a boolean or a float, whose image_name is
    # repeated, that have no matrix, nest deep or hold a 19-digit number; it reports the others.
    converted = {4, 5, 6, 7, 8, 9, 10, 18, 24, 30, 31}
    if on_error == "keep":
        errors = loads[0][ERRORS_COLUMN][len(TAKEN):]
        assert {k for k, error in enumerate(errors) if error is None} == converted
    else:
        assert len(loads[0]) == len(TAKEN) + len(converted)


def test_escaped_generated_documents_take_the_compiled_path_exactly(tmp_path):
    """Generated documents written with every non-ASCII character escaped (surrogate pairs for
    emoji) and with spaces after separators."""
    records = list(testing.mmc4_records(1500, seed=11))
    source = tmp_path / "escaped.jsonl"
    source.write_text("".join(json.dumps(record, ensure_ascii=True) + "\n" for record in records), encoding="utf-8")
    taken = 0
    for batch, positions, fast, slow in compiled_positions_and_tables(str(source), tmp_path, {}):
        assert positions == list(range(len(batch.indexes)))
        assert fast.equals(slow)
        taken += len(positions)
    assert taken == len(records)


def test_valid_value_end_checks_the_whole_grammar():
    cases = {b'{"a": [1, -2.5e+3, "x\\u00e9", true, false, null, {}, []]}': True, b"[1 2]": False, b'{"a" 1}': False, b"[1,]": False,
             b'{"a": 1,}': False, b"tru": False, b"01": False, b"1.": False, b"1e": False, b"1e123": False, b'"\\ud800"': False,
             b'"\\ud83d\\ude00"': True, b'"a\tb"': False, b"[[[[]]]]": True, b"[[[[[]]]]]": False, b"{}": True, b"[]": True}
    for text, valid in cases.items():
        buf = np.frombuffer(text, np.uint8)
        end = mmc4_parse.valid_value_end(buf, 0, len(buf), np.empty(3, np.uint8), np.empty(8, np.uint8))
        assert (end == len(buf)) == valid, text
