"""Tiny random Stable Diffusion pipelines built with diffusers/transformers (their own test sizes), saved with
``save_pretrained`` and loaded by hugkit through the normal path.

No CLIP tokenizer can be downloaded here, so the tokenizer is a small real CLIP-format BPE (byte alphabet, the
``</w>`` end-of-word forms, a few merges, the two CLIP special tokens) written to vocab.json / merges.txt.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

_MERGES = ["t h", "th e</w>", "a n", "an d</w>", "i n", "o n</w>", "e r</w>", "r e", "a r", "o r</w>", "s t", "e n",
           "o u", "in g</w>", "a t</w>", "e s</w>", "c a", "ca t</w>", "d o", "do g</w>", "re d</w>", "f o", "fo x</w>"]


def _bytes_to_unicode() -> list[str]:
    """GPT-2/CLIP's printable stand-ins for the 256 byte values, in byte order."""
    printable = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    chars, extra = {}, 0
    for b in range(256):
        if b in printable:
            chars[b] = chr(b)
        else:
            chars[b] = chr(256 + extra)
            extra += 1
    return [chars[b] for b in range(256)]


def write_clip_tokenizer(folder: Path, pad_token: str = "<|endoftext|>") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    alphabet = _bytes_to_unicode()
    tokens = alphabet + [c + "</w>" for c in alphabet] + ["".join(m.split()) for m in _MERGES]
    tokens += ["<|startoftext|>", "<|endoftext|>"]
    vocab = {token: i for i, token in enumerate(dict.fromkeys(tokens))}
    (folder / "vocab.json").write_text(json.dumps(vocab), encoding="utf-8")
    (folder / "merges.txt").write_text("#version: 0.2\n" + "\n".join(_MERGES) + "\n", encoding="utf-8")
    specials = {"bos_token": "<|startoftext|>", "eos_token": "<|endoftext|>", "unk_token": "<|endoftext|>", "pad_token": pad_token}
    config = {"tokenizer_class": "CLIPTokenizer", "model_max_length": 77, "do_lower_case": True, **specials}
    (folder / "tokenizer_config.json").write_text(json.dumps(config), encoding="utf-8")
    (folder / "special_tokens_map.json").write_text(json.dumps(specials), encoding="utf-8")
    return folder


def tiny_unet(**overrides):
    from diffusers import UNet2DConditionModel

    config = dict(
        block_out_channels=(32, 64), layers_per_block=2, sample_size=32, in_channels=4, out_channels=4,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"), up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        cross_attention_dim=32, norm_num_groups=32,
    )
    config.update(overrides)
    torch.manual_seed(0)
    return UNet2DConditionModel(**config)


def tiny_vae(**overrides):
    from diffusers import AutoencoderKL

    config = dict(
        block_out_channels=[32, 64], in_channels=3, out_channels=3, down_block_types=["DownEncoderBlock2D"] * 2,
        up_block_types=["UpDecoderBlock2D"] * 2, latent_channels=4,
    )
    config.update(overrides)
    torch.manual_seed(0)
    return AutoencoderKL(**config)


def tiny_text_encoder(with_projection: bool = False, **overrides):
    import transformers

    config = dict(bos_token_id=0, eos_token_id=2, hidden_size=32, intermediate_size=37, layer_norm_eps=1e-05,
                  num_attention_heads=4, num_hidden_layers=5, pad_token_id=1, vocab_size=1000)
    config.update(overrides)
    torch.manual_seed(0)
    cls = transformers.CLIPTextModelWithProjection if with_projection else transformers.CLIPTextModel
    return cls(transformers.CLIPTextConfig(**config)).eval()


def tiny_sd_pipeline(tmp: Path, unet_overrides: dict | None = None, scheduler_overrides: dict | None = None):
    """A diffusers StableDiffusionPipeline of tiny random components, saved to ``tmp``; returns (pipe, folder)."""
    import transformers
    from diffusers import DDIMScheduler, StableDiffusionPipeline

    folder = tmp / "tiny-sd"
    tokenizer_dir = write_clip_tokenizer(tmp / "clip-tokenizer")
    scheduler = DDIMScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", clip_sample=False,
                              set_alpha_to_one=False, steps_offset=1, **(scheduler_overrides or {}))
    pipe = StableDiffusionPipeline(
        unet=tiny_unet(**(unet_overrides or {})), scheduler=scheduler, vae=tiny_vae(), text_encoder=tiny_text_encoder(),
        tokenizer=transformers.CLIPTokenizer.from_pretrained(tokenizer_dir), safety_checker=None,
        feature_extractor=None, image_encoder=None, requires_safety_checker=False,
    )
    pipe.set_progress_bar_config(disable=True)
    pipe.save_pretrained(folder)
    return pipe, folder


def save_as(pipeline_class_name: str, folder, **components):
    """Build diffusers' ``pipeline_class_name`` from ``components`` and save it: a folder whose model_index.json
    names that class, as diffusers writes it."""
    import diffusers

    pipe = getattr(diffusers, pipeline_class_name)(**components)
    pipe.set_progress_bar_config(disable=True)
    pipe.save_pretrained(folder)
    return pipe, folder


def tiny_sdxl_pipeline(tmp, pipeline_class_name: str = "StableDiffusionXLPipeline", refiner: bool = False):
    """A tiny random SDXL pipeline (diffusers' own SDXL test sizes: two CLIP encoders of width 32, the second with
    a projection, a UNet with "text_time" added conditioning) saved to ``tmp``; returns (pipe, folder).
    ``refiner``: the refiner layout, only the second encoder and an aesthetic score instead of the target size."""
    import diffusers
    import torch
    import transformers

    time_ids = 5 if refiner else 6
    unet = tiny_unet(attention_head_dim=(2, 4), use_linear_projection=True, addition_embed_type="text_time",
                     addition_time_embed_dim=8, transformer_layers_per_block=(1, 2), norm_num_groups=1,
                     projection_class_embeddings_input_dim=8 * time_ids + 32, cross_attention_dim=32 if refiner else 64)
    scheduler = diffusers.DDIMScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
                                        clip_sample=False, set_alpha_to_one=False, steps_offset=1)
    # SDXL's second tokenizer pads with "!", the first with the end token
    tokenizer_2 = transformers.CLIPTokenizer.from_pretrained(write_clip_tokenizer(tmp / "tokenizer-2", pad_token="!"))
    torch.manual_seed(1)
    text_encoder_2 = tiny_text_encoder(with_projection=True, hidden_act="gelu", projection_dim=32)
    components = dict(vae=tiny_vae(sample_size=128), text_encoder_2=text_encoder_2, tokenizer_2=tokenizer_2, unet=unet,
                      scheduler=scheduler, add_watermarker=False, text_encoder=None, tokenizer=None)
    if refiner:
        components["requires_aesthetics_score"] = True
    else:
        components["text_encoder"] = tiny_text_encoder(hidden_act="gelu", projection_dim=32)
        components["tokenizer"] = transformers.CLIPTokenizer.from_pretrained(write_clip_tokenizer(tmp / "tokenizer"))
    return save_as(pipeline_class_name, tmp / "tiny-sdxl", **components)



def max_pixel_difference(a, b) -> float:
    import numpy as np

    return float(np.abs(np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64)).max())
