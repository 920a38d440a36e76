"""Pipelines from an original-layout single file, and from the Hugging Face cache diffusers shares.

The single file is written from a tiny diffusers pipeline's own weights (mapped back to LDM names with the test
tables of test_single_file.py); diffusers converts the same file with its own code (``from_single_file`` with the
tiny folder as ``config=``), and both must draw the same image as the pipeline the file came from.
"""

from __future__ import annotations

import os
import shutil

import pytest
import torch
from safetensors.torch import save_file

import diffusers
import hugkit
from hugkit.diffusion.pipeline_utils import DiffusionPipeline
from tests.diffusion.test_single_file import SD_BETAS, clip_to_ldm, unet_to_ldm, vae_to_ldm
from tests.diffusion.tiny_pipelines import max_pixel_difference

PROMPT = "a red fox and the cat"


def _seed() -> torch.Generator:
    return torch.Generator().manual_seed(0)


@pytest.fixture(scope="module")
def single_file(sd_folder, tmp_path_factory):
    source = diffusers.StableDiffusionPipeline.from_pretrained(sd_folder)
    state = {**unet_to_ldm(source.unet.state_dict(), dict(source.unet.config)),
             **vae_to_ldm(source.vae.state_dict(), len(source.vae.config.block_out_channels))}
    state.update(clip_to_ldm(source.text_encoder.state_dict()))  # transformers 5 keys (no text_model. prefix)
    state["betas"] = SD_BETAS.float()
    path = tmp_path_factory.mktemp("single") / "tiny-sd.safetensors"
    save_file({k: v.contiguous() for k, v in state.items()}, str(path))
    return path


def test_from_single_file_draws_what_diffusers_draws(single_file, sd_folder):
    tokenizer = hugkit.AutoTokenizer.from_pretrained(sd_folder / "tokenizer")
    mine = hugkit.StableDiffusionPipeline.from_single_file(
        single_file, tokenizer=tokenizer, config_overrides={"text_encoder": {"num_attention_heads": 4}},
    )
    mine.set_progress_bar_config(disable=True)
    assert type(mine.unet).__module__.startswith("hugkit") and type(mine.scheduler) is hugkit.PNDMScheduler
    reference = diffusers.StableDiffusionPipeline.from_single_file(str(single_file), config=str(sd_folder), safety_checker=None)
    reference.set_progress_bar_config(disable=True)
    reference.scheduler = diffusers.PNDMScheduler.from_config(mine.scheduler.config)
    source = diffusers.StableDiffusionPipeline.from_pretrained(sd_folder)
    source.set_progress_bar_config(disable=True)
    source.scheduler = diffusers.PNDMScheduler.from_config(mine.scheduler.config)
    args = dict(prompt=PROMPT, num_inference_steps=3, output_type="np", height=64, width=64)
    expected = reference(generator=_seed(), **args).images
    assert max_pixel_difference(source(generator=_seed(), **args).images, expected) <= 1e-5
    assert max_pixel_difference(mine(generator=_seed(), **args).images, expected) <= 1e-3


def test_single_file_tokenizer_from_a_config_folder_or_a_clear_error(single_file, sd_folder, monkeypatch, tmp_path):
    overrides = {"text_encoder": {"num_attention_heads": 4}}
    pipe = DiffusionPipeline.from_single_file(single_file, config=sd_folder, config_overrides=overrides)
    assert type(pipe) is hugkit.StableDiffusionPipeline and pipe.tokenizer.model_max_length == 77
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty"))
    with pytest.raises(ValueError, match="holds no tokenizer.*openai/clip-vit-large-patch14"):
        DiffusionPipeline.from_single_file(single_file, config_overrides=overrides)
    with pytest.raises(TypeError, match="unexpected arguments"):
        DiffusionPipeline.from_single_file(single_file, config=sd_folder, config_overrides=overrides, unet_x=1)


def test_a_model_in_the_hf_cache_loads_by_id_without_a_download(sd_folder, tmp_path, monkeypatch):
    """The cache layout diffusers and huggingface_hub write: models--org--name/{refs/main, snapshots/<commit>/}."""
    commit = "0123456789abcdef0123456789abcdef01234567"
    repo = tmp_path / "hub" / "models--someone--tiny-sd"
    shutil.copytree(sd_folder, repo / "snapshots" / commit)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(commit)
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    pipe = DiffusionPipeline.from_pretrained("someone/tiny-sd")
    assert type(pipe) is hugkit.StableDiffusionPipeline
    assert type(DiffusionPipeline.from_pretrained("someone/tiny-sd", cache_dir=tmp_path / "hub").vae) is hugkit.AutoencoderKL
    # huggingface_hub read HF_HUB_CACHE when it was imported: tell diffusers the folder explicitly
    reference = diffusers.StableDiffusionPipeline.from_pretrained("someone/tiny-sd", cache_dir=tmp_path / "hub",
                                                                  local_files_only=True)
    for p in (pipe, reference):
        p.set_progress_bar_config(disable=True)
    expected = reference(PROMPT, num_inference_steps=2, generator=_seed(), output_type="np").images
    got = pipe(PROMPT, num_inference_steps=2, generator=_seed(), output_type="np").images
    assert max_pixel_difference(got, expected) <= 1e-3
