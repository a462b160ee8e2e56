"""hf_mmbuilder.models: specs, device choice (FORCE_CPU wins over any accelerator), dtype, loading."""

from __future__ import annotations

import pytest

from hf_mmbuilder import models

torch = pytest.importorskip("torch", reason="model loading needs the vlm extra")
transformers = pytest.importorskip("transformers", reason="model loading needs the vlm extra")


@pytest.fixture
def no_force_cpu(monkeypatch):
    monkeypatch.delenv(models.FORCE_CPU_VARIABLE, raising=False)


def test_spec_and_reference():
    assert models.is_model_spec("model:org/clip") and not models.is_model_spec("embedding") and not models.is_model_spec(None)
    assert models.model_reference("model:org/clip") == "org/clip"
    assert models.model_reference("/models/clip") == "/models/clip"
    with pytest.raises(ValueError, match=r"model spec 'model:' names no model"):
        models.model_reference("model:")


@pytest.mark.parametrize("found", ["cuda", "mps", "cpu"])
def test_auto_takes_what_the_device_query_answers(monkeypatch, no_force_cpu, found):
    monkeypatch.setattr(models, "accelerator", lambda: found)
    assert models.resolve_device("auto") == found
    assert models.resolve_device(None) == found
    assert models.resolve_device("cpu") == "cpu"
    assert models.resolve_device("cuda:1") == "cuda:1"


@pytest.mark.parametrize("value", ["1", "true", "yes"])
def test_force_cpu_beats_auto_and_an_explicit_accelerator(monkeypatch, value):
    monkeypatch.setattr(models, "accelerator", lambda: "cuda")
    monkeypatch.setenv(models.FORCE_CPU_VARIABLE, value)
    assert models.resolve_device("auto") == "cpu"
    assert models.resolve_device("cuda") == "cpu"
    assert models.resolve_device("mps") == "cpu"


@pytest.mark.parametrize("value", ["", "0", "false", "no"])
def test_force_cpu_off_values(monkeypatch, value):
    monkeypatch.setattr(models, "accelerator", lambda: "mps")
    monkeypatch.setenv(models.FORCE_CPU_VARIABLE, value)
    assert models.resolve_device("auto") == "mps"


def test_accelerator_order(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert models.accelerator() == "cuda"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: True)
    assert models.accelerator() == "mps"
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    assert models.accelerator() == "cpu"


def test_bad_device_and_dtype():
    with pytest.raises(ValueError, match=r"device must be 'auto', 'cpu', 'mps', 'cuda' or 'cuda:N', got 'cuda:x'"):
        models.resolve_device("cuda:x")
    with pytest.raises(ValueError, match=r"got 'mps:0'"):
        models.resolve_device("mps:0")
    with pytest.raises(ValueError, match=r"dtype must be one of \('float32', 'float16', 'bfloat16'\), got 'int8'"):
        models.resolve_dtype("int8", "cpu")
    assert models.resolve_dtype(torch.float16, "cpu") == "float16"
    assert models.resolve_dtype(None, "mps") == "float16"


def _tiny_bert(folder):
    from tokenizers import Tokenizer, models as token_models, pre_tokenizers

    vocab = {token: index for index, token in enumerate(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "a", "cat", "dog"])}
    tokenizer = Tokenizer(token_models.WordLevel(vocab=vocab, unk_token="[UNK]"))
    tokenizer.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    fast = transformers.PreTrainedTokenizerFast(tokenizer_object=tokenizer, unk_token="[UNK]", pad_token="[PAD]", cls_token="[CLS]", sep_token="[SEP]")
    config = transformers.BertConfig(vocab_size=len(vocab), hidden_size=8, num_hidden_layers=1, num_attention_heads=2, intermediate_size=16)
    torch.manual_seed(0)
    transformers.BertModel(config).save_pretrained(folder)
    fast.save_pretrained(folder)
    return folder


def test_load_a_folder_on_the_forced_cpu(monkeypatch, tmp_path):
    folder = str(_tiny_bert(tmp_path / "bert"))
    monkeypatch.setattr(models, "accelerator", lambda: "cuda")
    monkeypatch.setenv(models.FORCE_CPU_VARIABLE, "1")
    models.clear_cache()
    loaded = models.load_model(f"model:{folder}")
    assert (loaded.kind, loaded.device, loaded.dtype, loaded.reference) == ("transformers", "cpu", "float32", folder)
    assert type(loaded.model).__name__ == "BertModel" and not loaded.model.training
    assert next(loaded.model.parameters()).device.type == "cpu"
    assert loaded.processor("a cat")["input_ids"] == [4, 5]
    assert models.load_model(folder) is loaded  # cached: an op calls it once per batch
    half = models.load_model(folder, dtype="float16")
    assert half is not loaded and next(half.model.parameters()).dtype == torch.float16
    models.clear_cache()
    assert models.load_model(folder) is not loaded


def test_identity_follows_the_folder_contents(tmp_path):
    folder = tmp_path / "m"
    folder.mkdir()
    (folder / "config.json").write_text("{}")
    before = models.model_identity(str(folder))
    (folder / "config.json").write_text('{"a": 1}')
    assert models.model_identity(f"model:{folder}") != before


def test_missing_model_names_it(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(OSError, match=r"^model 'no-such-org/no-such-model': cannot load this Hub id"):
        models.load_model("model:no-such-org/no-such-model", device="cpu")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(OSError, match=rf"^model '{empty}': cannot load this folder"):
        models.load_model(str(empty), device="cpu")
