from datasets import Dataset

from hf_mmbuilder import schema


def test_split_chunks_keeps_whitespace_and_drops_trailing_empty_chunk():
    text = "a <|__dj__eoc|> b <|__dj__eoc|>"
    assert schema.split_chunks(text) == ["a ", " b "]
    assert schema.split_chunks("no eoc") == ["no eoc"]


def test_alignment_errors_report_each_offending_row_and_column():
    batch = {
        "text": ["<__dj__image> x", "<__dj__image><__dj__image>", None, "<__dj__video>"],
        "images": [["a.jpg"], ["b.jpg"], [], []],
        "videos": [[], [], ["v.mp4"], ["v.mp4"]],
    }
    errors = schema.alignment_errors(batch)
    assert [(e.row, e.column, e.tokens, e.media) for e in errors] == [
        (1, "images", 2, 1),
        (2, "videos", 0, 1),
    ]


def test_validate_alignment_over_dataset_uses_configured_tokens():
    ds = Dataset.from_dict({"text": ["<image> q", "q"], "images": [["a.jpg"], ["b.jpg"]]})
    errors = schema.validate_alignment(ds, schema.SpecialTokens(image="<image>"), batch_size=1)
    assert [e.row for e in errors] == [1]
    assert "row 1" in str(errors[0])


def test_dj_features_have_the_dj_columns_first():
    features = schema.dj_features()
    assert list(features) == ["text", "images", "audios", "videos"]
