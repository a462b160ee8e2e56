"""The Arrow helpers: buffer views the kernels read, null checks naming the row, table batches."""

import datasets
import numpy as np
import pyarrow as pa
import pytest

from hf_mmbuilder.arrow import batch_column, check_column, iter_tables, string_array, string_buffers, string_list_buffers


def _strings(buffers) -> list[bytes]:
    offsets, data = buffers.offsets, buffers.data
    return [bytes(data[offsets[i] : offsets[i + 1]]) for i in range(len(offsets) - 1)]


@pytest.mark.parametrize("kind, width", [(pa.string(), np.int32), (pa.large_string(), np.int64)])
def test_string_buffers_are_named_zero_copy_views_of_a_sliced_array(kind, width):
    array = pa.array(["zero", "", "tw\u00f6", "three"], kind).slice(1, 2)
    buffers = string_buffers(array)
    assert buffers.offsets.dtype == width and buffers.data.dtype == np.uint8
    assert buffers.offsets.shape == (3,)
    assert _strings(buffers) == ["".encode(), "tw\u00f6".encode()]
    assert np.shares_memory(buffers.data, np.frombuffer(array.buffers()[2], np.uint8))


def test_string_buffers_of_only_empty_strings_have_no_bytes():
    buffers = string_buffers(pa.array(["", ""], pa.large_string()))
    assert buffers.offsets.tolist() == [0, 0, 0] and buffers.data.shape == (0,)


@pytest.mark.parametrize("kind", [pa.list_(pa.string()), pa.large_list(pa.string())])
def test_string_list_buffers_index_the_whole_child_array(kind):
    array = pa.array([["a"], [], ["bc", "d"]], kind).slice(1)
    lists, offsets, data = string_list_buffers(array)
    assert lists.tolist() == [1, 1, 3]
    assert [bytes(data[offsets[i] : offsets[i + 1]]) for i in range(lists[0], lists[-1])] == [b"bc", b"d"]


def test_string_array_is_one_contiguous_large_string_array():
    chunked = pa.chunked_array([pa.array(["a"]), pa.array(["b", "c"])])
    out = string_array(chunked)
    assert out.type == pa.large_string() and out.to_pylist() == ["a", "b", "c"]
    assert string_array(["x"]).to_pylist() == ["x"]


def test_string_array_names_the_first_null_row_and_the_column():
    with pytest.raises(ValueError, match=r"row 7: 'caption' is null"):
        string_array(pa.array(["a", "b", None, None]), row_offset=5, name="caption")


def test_string_array_refuses_non_strings():
    with pytest.raises(ValueError, match=r"column 'text' must hold strings, not int64"):
        string_array(pa.array([1, 2]))


def test_iter_tables_over_a_dataset_selects_columns_and_counts_offsets():
    ds = datasets.Dataset.from_dict({"text": list("abcde"), "n": list(range(5))})
    batches = list(iter_tables(ds, 2, ["n"]))
    assert [offset for offset, _ in batches] == [0, 2, 4]
    assert all(table.column_names == ["n"] for _, table in batches)
    assert pa.concat_tables([table for _, table in batches]).column("n").to_pylist() == list(range(5))
    assert [table.column_names for _, table in iter_tables(ds, 10)] == [["text", "n"]]


def test_iter_tables_over_a_table_gives_one_batch_and_over_tables_counts_offsets():
    table = pa.table({"text": ["a", "b", "c"], "n": [1, 2, 3]})
    assert [(offset, len(t)) for offset, t in iter_tables(table, 1)] == [(0, 3)]
    assert [t.column_names for _, t in iter_tables(table, 1, ["text"])] == [["text"]]
    assert [(offset, len(t)) for offset, t in iter_tables([table, table.slice(1)], 1)] == [(0, 3), (3, 2)]


def test_check_column_names_the_missing_column_and_the_existing_ones():
    ds = datasets.Dataset.from_dict({"text": ["a"], "images": [[]]})
    check_column(ds, "images")
    with pytest.raises(ValueError, match=r"dataset has no column 'videos' \(columns: text, images\)"):
        check_column(ds, "videos")


def test_batch_column_reads_dict_and_table_batches():
    assert batch_column({"text": ["a", "b"]}, "text") == ["a", "b"]
    assert batch_column(pa.table({"text": ["a", "b"]}), "text").to_pylist() == ["a", "b"]
