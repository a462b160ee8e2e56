"""Tiny CLIP / SigLIP / CLAP / BERT models built from configs, with processors built here (a
word-level tokenizer, CLIP's image processor, CLAP's feature extractor), saved to a folder: the
embedding tests load them by path as a user loads a Hub model. Random weights, seeded."""

from __future__ import annotations

from pathlib import Path

WORDS = "a the photo of red green blue cat dog bus car street sky on in and is with".split()
SPECIAL = ["[PAD]", "[UNK]", "<s>", "</s>"]


def tokenizer(max_length: int = 16, model_input_names=None):
    """A word-level fast tokenizer (``<s> words </s>``); ``</s>`` is id 3, ``[PAD]`` id 0."""
    from tokenizers import Tokenizer, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    vocab = {token: index for index, token in enumerate(SPECIAL + WORDS)}
    backend = Tokenizer(models.WordLevel(vocab=vocab, unk_token="[UNK]"))
    backend.pre_tokenizer = pre_tokenizers.Whitespace()
    backend.post_processor = processors.TemplateProcessing(single="<s> $A </s>", special_tokens=[("<s>", 2), ("</s>", 3)])
    return PreTrainedTokenizerFast(tokenizer_object=backend, unk_token="[UNK]", pad_token="[PAD]", bos_token="<s>", eos_token="</s>",
                                   model_max_length=max_length, **({"model_input_names": model_input_names} if model_input_names else {}))


def clip(folder: Path, *, image_size: int = 32, projection_dim: int = 8, seed: int = 0) -> str:
    """CLIP with a 1-layer ViT (``image_size`` px, 8 px patches) and a 1-layer text tower."""
    import torch
    from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel, CLIPProcessor, CLIPTextConfig, CLIPVisionConfig

    text = CLIPTextConfig(vocab_size=len(SPECIAL) + len(WORDS), hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                          num_attention_heads=2, max_position_embeddings=16, pad_token_id=0, bos_token_id=2, eos_token_id=3)
    vision = CLIPVisionConfig(hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2,
                              image_size=image_size, patch_size=8)
    config = CLIPConfig(text_config=text.to_dict(), vision_config=vision.to_dict(), projection_dim=projection_dim)
    torch.manual_seed(seed)
    CLIPModel(config).eval().save_pretrained(folder)
    images = CLIPImageProcessor(size={"shortest_edge": image_size}, crop_size={"height": image_size, "width": image_size})
    CLIPProcessor(image_processor=images, tokenizer=tokenizer()).save_pretrained(folder)
    return str(folder)


def siglip(folder: Path, *, seed: int = 0) -> str:
    """SigLIP with 1-layer towers (32 px images resized to a square, texts padded to 16)."""
    import torch
    from transformers import SiglipConfig, SiglipImageProcessor, SiglipModel, SiglipProcessor, SiglipTextConfig, SiglipVisionConfig

    text = SiglipTextConfig(vocab_size=len(SPECIAL) + len(WORDS), hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                            num_attention_heads=2, max_position_embeddings=16, pad_token_id=0, eos_token_id=3)
    vision = SiglipVisionConfig(hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2, image_size=32, patch_size=8)
    torch.manual_seed(seed)
    SiglipModel(SiglipConfig(text_config=text.to_dict(), vision_config=vision.to_dict())).eval().save_pretrained(folder)
    # input_ids only, as SigLIP's own tokenizer: the model was trained without an attention mask.
    words = tokenizer(model_input_names=["input_ids"])
    SiglipProcessor(image_processor=SiglipImageProcessor(size={"height": 32, "width": 32}), tokenizer=words).save_pretrained(folder)
    return str(folder)


def clap(folder: Path, *, seed: int = 0) -> str:
    """CLAP with a tiny HTSAT audio tower (16 mel bins, 1-second window at 8 kHz; unfused, as
    laion/clap-htsat-unfused: a longer clip is cropped at random)."""
    import torch
    from transformers import ClapAudioConfig, ClapConfig, ClapFeatureExtractor, ClapModel, ClapProcessor, ClapTextConfig

    text = ClapTextConfig(vocab_size=len(SPECIAL) + len(WORDS) + 2, hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                          num_attention_heads=2, max_position_embeddings=24, pad_token_id=0)
    audio = ClapAudioConfig(spec_size=64, window_size=4, num_mel_bins=16, patch_size=4, patch_stride=(4, 4), hidden_size=16,
                            depths=[1, 1], num_attention_heads=[2, 2], patch_embeds_hidden_size=8, projection_hidden_size=16,
                            num_classes=4, enable_fusion=False)
    torch.manual_seed(seed)
    ClapModel(ClapConfig(text_config=text.to_dict(), audio_config=audio.to_dict(), projection_dim=8)).eval().save_pretrained(folder)
    extractor = ClapFeatureExtractor(feature_size=16, sampling_rate=8000, hop_length=128, max_length_s=1, fft_window_size=256,
                                     frequency_min=0, frequency_max=4000, truncation="rand_trunc")
    ClapProcessor(feature_extractor=extractor, tokenizer=tokenizer()).save_pretrained(folder)
    return str(folder)


def bert(folder: Path, *, seed: int = 0) -> str:
    """A 1-layer BERT text encoder (no pooling head of its own: embed takes the masked mean)."""
    import torch
    from transformers import BertConfig, BertModel

    config = BertConfig(vocab_size=len(SPECIAL) + len(WORDS), hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                        intermediate_size=32, max_position_embeddings=16, pad_token_id=0)
    torch.manual_seed(seed)
    BertModel(config, add_pooling_layer=False).eval().save_pretrained(folder)
    tokenizer().save_pretrained(folder)
    return str(folder)
