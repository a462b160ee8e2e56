"""A tiny LLaVA-architecture image-text-to-text model built from a config, with a word-level tokenizer
built here (no download), for the transformers backend tests. Random weights: tests constrain the
judge's output format with ``prefix_allowed_tokens_fn``, as a user may with a real judge."""

from __future__ import annotations

VOCABULARY = "Instruction: What is in the image ? NO_INST [[1]] [[2]] [[3]] [[4]] [[5]] USER: ASSISTANT: a cat dog red car street".split()
SPECIAL = ["<pad>", "<unk>", "<s>", "</s>", "<image>"]
CHAT_TEMPLATE = (
    "{% for m in messages %}{{ m['role'].upper() }}: {% for c in m['content'] %}"
    "{% if c['type'] == 'image' %}<image> {% else %}{{ c['text'] }} {% endif %}{% endfor %}"
    "{% if not loop.last or add_generation_prompt %}</s> {% endif %}{% endfor %}"
    "{% if add_generation_prompt %}ASSISTANT: {% endif %}"
)


def build(chat_template: str | None = CHAT_TEMPLATE, seed: int = 0):
    """Return ``(model, processor)``: LLaVA with a 1-layer CLIP tower (28 px, 14 px patches) and a
    1-layer Llama of width 16."""
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import (
        CLIPImageProcessor,
        CLIPVisionConfig,
        LlamaConfig,
        LlavaConfig,
        LlavaForConditionalGeneration,
        LlavaProcessor,
        PreTrainedTokenizerFast,
    )

    vocab = {token: index for index, token in enumerate(SPECIAL + VOCABULARY)}
    tokenizer = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    tokenizer.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tokenizer.decoder = decoders.WordPiece(prefix="##")
    fast = PreTrainedTokenizerFast(tokenizer_object=tokenizer, bos_token="<s>", eos_token="</s>", unk_token="<unk>", pad_token="<pad>",
                                   extra_special_tokens={"image_token": "<image>"})
    image_processor = CLIPImageProcessor(size={"shortest_edge": 28}, crop_size={"height": 28, "width": 28})
    processor = LlavaProcessor(image_processor=image_processor, tokenizer=fast, patch_size=14, vision_feature_select_strategy="default",
                               chat_template=chat_template, num_additional_image_tokens=1)
    vision = CLIPVisionConfig(hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2, image_size=28, patch_size=14, projection_dim=16)
    text = LlamaConfig(vocab_size=len(vocab), hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2, num_key_value_heads=2,
                       max_position_embeddings=4096, pad_token_id=0, bos_token_id=2, eos_token_id=3)
    config = LlavaConfig(vision_config=vision, text_config=text, image_token_index=vocab["<image>"], vision_feature_layer=-1)
    torch.manual_seed(seed)
    return LlavaForConditionalGeneration(config).eval(), processor


def judge_format(processor):
    """``prefix_allowed_tokens_fn`` forcing ``Instruction: What is in the image ?`` on the classifier
    prompt (the one containing ``NO_INST``) and ``[[5]]`` on the scoring prompts, then end of text."""
    tokenizer = processor.tokenizer
    no_inst = tokenizer.convert_tokens_to_ids("NO_INST")
    eos = tokenizer.eos_token_id
    classify = tokenizer.convert_tokens_to_ids("Instruction: What is in the image ?".split())
    score = tokenizer.convert_tokens_to_ids(["[[5]]"])

    def allowed(batch_id, input_ids):
        ids = input_ids.tolist()
        forced = classify if no_inst in ids else score
        for k in range(len(forced), 0, -1):
            if ids[-k:] == forced[:k]:
                return [forced[k]] if k < len(forced) else [eos]
        return [forced[0]]

    return allowed
