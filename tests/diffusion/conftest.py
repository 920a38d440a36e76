"""Fixtures for the diffusion tests: a tiny random SD pipeline folder, built once per session."""

from __future__ import annotations

import pytest

from tests.diffusion.tiny_pipelines import tiny_sd_pipeline


@pytest.fixture(scope="session")
def sd_folder(tmp_path_factory):
    pipe, folder = tiny_sd_pipeline(tmp_path_factory.mktemp("sd"))
    return folder


# --- image-to-image, inpainting and SDXL folders (test_img2img, test_inpaint, test_sdxl, test_auto_pipeline) -----
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

    from tests.diffusion.tiny_pipelines import tiny_text_encoder, tiny_unet, tiny_vae, write_clip_tokenizer

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


@pytest.fixture(scope="session")
def sd_inpaint_folder(tmp_path_factory):
    """A tiny SD inpainting checkpoint: 9-channel UNet, saved by diffusers' StableDiffusionInpaintPipeline."""
    pipe, _ = tiny_sd_pipeline(tmp_path_factory.mktemp("sd-inpaint-src"), unet_overrides={"in_channels": 9})
    return save_as("StableDiffusionInpaintPipeline", tmp_path_factory.mktemp("sd-inpaint") / "tiny-sd-inpaint",
                   **pipe.components, requires_safety_checker=False)[1]


@pytest.fixture(scope="session")
def sdxl_folder(tmp_path_factory):
    return tiny_sdxl_pipeline(tmp_path_factory.mktemp("sdxl"))[1]


@pytest.fixture(scope="module")
def torch_one_thread():
    """Tiny tensors run several times faster on one thread than on threads that share busy cores."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
