"""A tiny Llama causal language model for the fluency tests, built from a config with a word-level
tokenizer made here (no download) and saved to a folder, as a user's model would be named;
optionally trained a few steps on one sentence so that it finds that sentence fluent. (The text
and CLIP encoders come from ``embedding_models``.)"""

from __future__ import annotations

WORDS = ("the cat sat on mat a dog ran in park red ball is what where does sit who describe image picture "
         "this of and blue sky green tree big small").split()
SPECIAL = ["<pad>", "<unk>", "<s>", "</s>"]


def _tokenizer():
    from tokenizers import Tokenizer, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    vocab = {token: index for index, token in enumerate(SPECIAL + WORDS)}
    tokenizer = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
    tokenizer.post_processor = processors.TemplateProcessing(single="<s> $A", special_tokens=[("<s>", vocab["<s>"])])
    return PreTrainedTokenizerFast(tokenizer_object=tokenizer, unk_token="<unk>", pad_token="<pad>", bos_token="<s>", eos_token="</s>"), vocab


def build_llama(folder, *, train_on: str | None = None, steps: int = 60, seed: int = 0) -> str:
    """A 1-layer Llama of width 32 saved in ``folder`` with its tokenizer (BOS first); trained
    ``steps`` Adam steps on ``train_on`` when given. Returns the folder."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    tokenizer, vocab = _tokenizer()
    config = LlamaConfig(vocab_size=len(vocab), hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2,
                         num_key_value_heads=2, max_position_embeddings=256, pad_token_id=0, bos_token_id=2, eos_token_id=3)
    torch.manual_seed(seed)
    model = LlamaForCausalLM(config)
    if train_on is not None:
        ids = torch.tensor([tokenizer(train_on)["input_ids"]])
        optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
        model.train()
        for _ in range(steps):
            optimizer.zero_grad()
            model(input_ids=ids, labels=ids).loss.backward()
            optimizer.step()
    model.eval().save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return str(folder)

