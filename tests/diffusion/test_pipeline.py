"""StableDiffusionPipeline end to end: hugkit loads a tiny random pipeline diffusers saved and draws the same image
for the same seed, with every scheduler and the call options users pass; the loop streams; folders round-trip."""

from __future__ import annotations

import json
import logging
import types

import numpy as np
import pytest
import torch

import diffusers
from tests.diffusion.tiny_pipelines import max_pixel_difference, tiny_sd_pipeline

import hugkit
from hugkit.diffusion.pipeline_utils import DiffusionPipeline

PROMPT = "a red fox and the cat"

# (hugkit/diffusers class name, extra config) for every scheduler the issue names.
SCHEDULERS = {
    "ddim": ("DDIMScheduler", {}),
    "ddim-trailing": ("DDIMScheduler", {"timestep_spacing": "trailing"}),
    "ddpm": ("DDPMScheduler", {}),
    "pndm": ("PNDMScheduler", {"skip_prk_steps": True}),
    "pndm-prk": ("PNDMScheduler", {"skip_prk_steps": False}),
    "lms": ("LMSDiscreteScheduler", {}),
    "euler": ("EulerDiscreteScheduler", {}),
    "euler-karras": ("EulerDiscreteScheduler", {"use_karras_sigmas": True}),
    "euler-ancestral": ("EulerAncestralDiscreteScheduler", {}),
    "dpm++2m": ("DPMSolverMultistepScheduler", {}),
    "dpm++2m-karras": ("DPMSolverMultistepScheduler", {"use_karras_sigmas": True}),
    "dpm++-sde": ("DPMSolverMultistepScheduler", {"algorithm_type": "sde-dpmsolver++"}),
    "unipc": ("UniPCMultistepScheduler", {}),
    "lcm": ("LCMScheduler", {}),
}


def _seed(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _give_clip_skip_path(pipe) -> None:
    """transformers 5's CLIPTextModel has no .text_model, which diffusers' clip_skip path reads."""
    encoder = pipe.text_encoder
    object.__setattr__(encoder, "text_model", types.SimpleNamespace(final_layer_norm=encoder.final_layer_norm))


@pytest.fixture(scope="module")
def pipes(sd_folder):
    reference = diffusers.StableDiffusionPipeline.from_pretrained(sd_folder, safety_checker=None)
    reference.set_progress_bar_config(disable=True)
    _give_clip_skip_path(reference)
    mine = DiffusionPipeline.from_pretrained(sd_folder)
    mine.set_progress_bar_config(disable=True)
    return reference, mine


@pytest.fixture
def swap_scheduler(pipes):
    """Give both pipelines a scheduler built from the folder's own config; restore the originals afterwards
    (a config built from another scheduler's keeps that one's fields, so tests must not chain swaps)."""
    reference, mine = pipes
    saved = reference.scheduler, mine.scheduler

    def swap(class_name: str, **extra):
        reference.scheduler = getattr(diffusers, class_name).from_config(saved[0].config, **extra)
        mine.scheduler = getattr(hugkit, class_name).from_config(saved[1].config, **extra)

    yield swap
    reference.scheduler, mine.scheduler = saved


def _both(pipes, **kwargs):
    reference, mine = pipes
    kwargs.setdefault("num_inference_steps", 3)
    kwargs.setdefault("output_type", "np")
    expected = reference(generator=_seed(), **kwargs).images
    got = mine(generator=_seed(), **kwargs).images
    return expected, got


def test_loads_as_the_folder_says(pipes):
    _, mine = pipes
    assert type(mine) is hugkit.StableDiffusionPipeline
    assert type(mine.unet).__name__ == "UNet2DConditionModel" and type(mine.unet).__module__.startswith("hugkit")
    assert type(mine.vae).__module__.startswith("hugkit") and type(mine.text_encoder).__module__.startswith("hugkit")
    assert type(mine.scheduler) is hugkit.DDIMScheduler
    assert mine.safety_checker is None and mine.vae_scale_factor == 2


@pytest.mark.parametrize("name", list(SCHEDULERS))
def test_same_image_as_diffusers_for_every_scheduler(pipes, swap_scheduler, name):
    class_name, extra = SCHEDULERS[name]
    swap_scheduler(class_name, **extra)
    expected, got = _both(pipes, prompt=PROMPT, num_inference_steps=4)
    assert got.shape == expected.shape == (1, 64, 64, 3)
    assert max_pixel_difference(got, expected) <= 1e-3, name


@pytest.mark.parametrize(
    "options",
    [
        {"negative_prompt": "dog"},
        {"prompt": ["a red fox", "the cat and the dog"], "negative_prompt": ["cat", "fox"]},
        {"num_images_per_prompt": 2},
        {"guidance_scale": 1.0},
        {"guidance_rescale": 0.7},
        {"clip_skip": 1},
        {"eta": 0.6},
        {"height": 48, "width": 80},
        {"output_type": "pt"},
        {"output_type": "latent"},
    ],
    ids=lambda o: ",".join(o),
)
def test_call_options_match_diffusers(pipes, options):
    options = {"prompt": PROMPT, **options}
    expected, got = _both(pipes, **options)
    if isinstance(expected, torch.Tensor):
        assert isinstance(got, torch.Tensor) and got.shape == expected.shape
        expected, got = expected.numpy(), got.numpy()
    assert got.shape == expected.shape
    assert max_pixel_difference(got, expected) <= 1e-3


def test_generator_lists_latents_and_embeddings(pipes):
    reference, mine = pipes
    gens = lambda: [_seed(1), _seed(2)]  # noqa: E731
    expected = reference(PROMPT, num_images_per_prompt=2, generator=gens(), num_inference_steps=3, output_type="np").images
    got = mine(PROMPT, num_images_per_prompt=2, generator=gens(), num_inference_steps=3, output_type="np").images
    assert max_pixel_difference(got, expected) <= 1e-3
    latents = torch.randn((1, 4, 32, 32), generator=_seed(3))
    embeds = torch.randn((1, 77, 32), generator=_seed(4))
    expected = reference(prompt_embeds=embeds, latents=latents, num_inference_steps=3, output_type="np").images
    got = mine(prompt_embeds=embeds, latents=latents, num_inference_steps=3, output_type="np").images
    assert max_pixel_difference(got, expected) <= 1e-3


def test_pil_output_and_tuple(pipes):
    _, mine = pipes
    images, nsfw = mine(PROMPT, num_inference_steps=2, generator=_seed(), return_dict=False)
    assert images[0].size == (64, 64) and images[0].mode == "RGB" and nsfw is None
    as_np = mine(PROMPT, num_inference_steps=2, generator=_seed(), output_type="np").images
    assert np.array_equal(np.asarray(images[0]), (as_np[0] * 255).round().astype("uint8"))


def test_custom_timesteps_and_sigmas(pipes, swap_scheduler):
    swap_scheduler("EulerDiscreteScheduler")
    for custom in ({"timesteps": [999, 700, 400, 100]}, {"sigmas": [14.0, 6.0, 2.0, 0.5]}):
        expected, got = _both(pipes, prompt=PROMPT, num_inference_steps=None, **custom)
        assert max_pixel_difference(got, expected) <= 1e-3, custom


# --- the loop is a generator -------------------------------------------------------------------
def test_stream_yields_every_step_and_the_same_image(pipes):
    _, mine = pipes
    steps = list(mine.stream(PROMPT, num_inference_steps=4, generator=_seed(), output_type="np"))
    assert [s.index for s in steps] == [0, 1, 2, 3]
    assert [int(s.timestep) for s in steps] == [int(t) for t in mine.scheduler.timesteps]
    assert all(s.output is None for s in steps[:-1]) and steps[-1].is_last
    preview = steps[0].preview
    assert preview.size == (32, 32) and preview.mode == "RGB"
    called = mine(PROMPT, num_inference_steps=4, generator=_seed(), output_type="np").images
    assert np.array_equal(steps[-1].images, called)


def test_breaking_out_of_the_stream_stops_the_work(pipes):
    _, mine = pipes
    calls = []
    hook = mine.unet.register_forward_hook(lambda *args: calls.append(1))
    try:
        for step in mine.stream(PROMPT, num_inference_steps=10, generator=_seed()):
            if step.index == 1:
                break
    finally:
        hook.remove()
    assert len(calls) == 2


def test_callback_on_step_end_matches_diffusers(pipes):
    reference, mine = pipes
    seen = {"reference": [], "mine": []}

    def callback(who):
        def on_step(pipe, i, t, tensors):
            seen[who].append((i, int(t), sorted(tensors)))
            return {"latents": tensors["latents"] * 0.9} if i == 1 else {}
        return on_step

    common = dict(prompt=PROMPT, num_inference_steps=3, output_type="np",
                  callback_on_step_end_tensor_inputs=["latents", "prompt_embeds"])
    expected = reference(generator=_seed(), callback_on_step_end=callback("reference"), **common).images
    got = mine(generator=_seed(), callback_on_step_end=callback("mine"), **common).images
    assert seen["mine"] == seen["reference"] and len(seen["mine"]) == 3
    assert max_pixel_difference(got, expected) <= 1e-3


def test_progress_bar_can_be_silenced(sd_folder, capsys):
    pipe = DiffusionPipeline.from_pretrained(sd_folder)
    pipe(PROMPT, num_inference_steps=2, generator=_seed())
    assert "2/2" in capsys.readouterr().err
    pipe.set_progress_bar_config(disable=True)
    pipe(PROMPT, num_inference_steps=2, generator=_seed())
    assert capsys.readouterr().err == ""


# --- memory options ----------------------------------------------------------------------------
def test_slicing_tiling_and_offload_keep_the_image(sd_folder, pipes):
    _, plain = pipes
    expected = plain(PROMPT, num_inference_steps=2, generator=_seed(), output_type="np").images
    pipe = DiffusionPipeline.from_pretrained(sd_folder)
    pipe.set_progress_bar_config(disable=True)
    pipe.enable_attention_slicing()
    pipe.enable_vae_slicing()
    assert max_pixel_difference(pipe(PROMPT, num_inference_steps=2, generator=_seed(), output_type="np").images, expected) <= 1e-4
    pipe.disable_attention_slicing()
    pipe.disable_vae_slicing()
    moved = []
    original = DiffusionPipeline._move_for_forward

    def recording(self, module, args):
        original(self, module, args)
        moved.append((type(module).__name__, self._offload_active is module))

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(DiffusionPipeline, "_move_for_forward", recording)
        pipe.enable_model_cpu_offload(device="cpu")
    got = pipe(PROMPT, num_inference_steps=2, generator=_seed(), output_type="np").images
    assert max_pixel_difference(got, expected) <= 1e-6
    names = [name for name, _ in moved]
    assert names[0] == "CLIPTextModel" and "UNet2DConditionModel" in names and names[-1] == "AutoencoderKL"
    assert all(active for _, active in moved)  # each module was the one on the device while it ran
    assert pipe._offload_active is None  # the last one went back after the call
    with pytest.raises(ValueError, match="enable_model_cpu_offload"):
        pipe.to("cpu")
    pipe.remove_all_hooks()


# --- folders -------------------------------------------------------------------------------------
def test_hugkit_saves_a_folder_diffusers_loads(pipes, tmp_path):
    reference, mine = pipes
    mine.save_pretrained(tmp_path / "saved")
    index = json.loads((tmp_path / "saved" / "model_index.json").read_text())
    assert index["_class_name"] == "StableDiffusionPipeline"
    assert index["unet"] == ["diffusers", "UNet2DConditionModel"] and index["text_encoder"] == ["transformers", "CLIPTextModel"]
    assert index["safety_checker"] == [None, None]
    again = diffusers.StableDiffusionPipeline.from_pretrained(tmp_path / "saved")
    again.set_progress_bar_config(disable=True)
    expected = reference(PROMPT, num_inference_steps=3, generator=_seed(), output_type="np").images
    got = again(PROMPT, num_inference_steps=3, generator=_seed(), output_type="np").images
    assert max_pixel_difference(got, expected) <= 1e-5


def test_variant_dtype_dict_and_overrides(pipes, tmp_path):
    reference, _ = pipes
    reference.save_pretrained(tmp_path / "v", variant="fp16")
    assert (tmp_path / "v" / "unet" / "diffusion_pytorch_model.fp16.safetensors").is_file()
    pipe = DiffusionPipeline.from_pretrained(
        tmp_path / "v", variant="fp16", torch_dtype={"unet": torch.float64, "default": torch.float32},
        scheduler=hugkit.EulerDiscreteScheduler.from_pretrained(tmp_path / "v", subfolder="scheduler"),
    )
    assert pipe.unet.dtype == torch.float64 and pipe.vae.dtype == torch.float32 and pipe.text_encoder.dtype == torch.float32
    assert type(pipe.scheduler) is hugkit.EulerDiscreteScheduler
    pipe.to(torch.float64)
    assert pipe.vae.dtype == torch.float64 and pipe.dtype == torch.float64


def test_auto_classes_and_subclass_loading(sd_folder):
    pipe = hugkit.StableDiffusionPipeline.from_pretrained(sd_folder, safety_checker=None)
    assert type(pipe) is hugkit.StableDiffusionPipeline


def test_loading_errors_name_the_problem(sd_folder, tmp_path, monkeypatch):
    with pytest.raises(FileNotFoundError, match="model_index.json"):
        DiffusionPipeline.from_pretrained(sd_folder / "unet")
    broken = tmp_path / "broken"
    broken.mkdir()
    index = json.loads((sd_folder / "model_index.json").read_text())
    (broken / "model_index.json").write_text(json.dumps(index))
    with pytest.raises(FileNotFoundError, match="lists a 'vae' component"):
        DiffusionPipeline.from_pretrained(broken)
    del index["vae"]
    (broken / "model_index.json").write_text(json.dumps(index))
    with pytest.raises(ValueError, match="has no 'vae' component"):
        DiffusionPipeline.from_pretrained(broken)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty-cache"))
    with pytest.raises(hugkit.CheckpointNotFoundError, match="empty-cache") as caught:
        DiffusionPipeline.from_pretrained("CompVis/stable-diffusion-v1-4")
    assert "huggingface-cli download CompVis/stable-diffusion-v1-4" in str(caught.value)
    with pytest.raises(TypeError, match="unexpected arguments"):
        DiffusionPipeline.from_pretrained(sd_folder, unett=None)


@pytest.mark.parametrize(
    "options, message",
    [
        ({"height": 63}, "multiples of 2"),
        ({"prompt": ["a", "b"], "negative_prompt": ["c"]}, "1 negative prompts for 2 prompts"),
        ({"num_inference_steps": 0}, "positive integer"),
        ({"generator": [torch.Generator(), torch.Generator()]}, "2 generators for 1 images"),
        ({"prompt": None}, "Pass a prompt"),
        ({"prompt": 3}, "string or a list"),
        ({"num_images_per_prompt": 0}, "num_images_per_prompt"),
        ({"output_type": "jpeg"}, "output_type"),
        ({"callback_on_step_end_tensor_inputs": ["noise"]}, "unknown"),
        ({"latents": torch.zeros(1, 4, 8, 8)}, "latents should have shape"),
    ],
)
def test_bad_input_gets_a_clear_error(pipes, options, message):
    _, mine = pipes
    args = {"prompt": PROMPT, "num_inference_steps": 2, **options}
    with pytest.raises((ValueError, TypeError), match=message):
        mine(**args)


def test_long_prompt_is_truncated_with_a_warning(pipes, caplog):
    _, mine = pipes
    with caplog.at_level(logging.WARNING, logger="hugkit"):
        mine("the cat " * 60, num_inference_steps=1, generator=_seed(), output_type="latent")
    assert any("truncated" in r.message for r in caplog.records)
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="hugkit"):
        mine(PROMPT, num_inference_steps=1, generator=_seed(), output_type="latent")
    assert not caplog.records


def test_sd2_v_prediction_matches_diffusers(tmp_path):
    _, folder = tiny_sd_pipeline(
        tmp_path, unet_overrides={"use_linear_projection": True, "upcast_attention": True, "attention_head_dim": (2, 4)},
        scheduler_overrides={"prediction_type": "v_prediction"},
    )
    reference = diffusers.StableDiffusionPipeline.from_pretrained(folder)  # loaded, as mine is: same config fields
    reference.set_progress_bar_config(disable=True)
    mine = DiffusionPipeline.from_pretrained(folder)
    mine.set_progress_bar_config(disable=True)
    for scheduler in ("DDIMScheduler", "EulerDiscreteScheduler", "DPMSolverMultistepScheduler"):
        reference.scheduler = getattr(diffusers, scheduler).from_config(reference.scheduler.config)
        mine.scheduler = getattr(hugkit, scheduler).from_config(mine.scheduler.config)
        expected = reference(PROMPT, num_inference_steps=3, generator=_seed(), output_type="np").images
        got = mine(PROMPT, num_inference_steps=3, generator=_seed(), output_type="np").images
        assert max_pixel_difference(got, expected) <= 1e-3, scheduler


def test_cli_text_to_image(sd_folder, tmp_path):
    from hugkit.cli import main

    out = tmp_path / "fox.png"
    assert main(["text-to-image", "--model", str(sd_folder), PROMPT, "-o", str(out), "--steps", "2", "--seed", "0",
                 "--scheduler", "euler-a"]) == 0
    from PIL import Image

    image = Image.open(out)
    assert image.size == (64, 64)
    assert main(["text-to-image", "--model", str(sd_folder), PROMPT, "--scheduler", "nope"]) == 2


@pytest.mark.parametrize("threshold, flagged", [(-1.0, True), (2.0, False)])
def test_safety_checker_reports_as_diffusers(tmp_path, threshold, flagged):
    """A tiny safety checker whose thresholds flag every image (or none): same flags and images as diffusers."""
    import transformers
    from diffusers.pipelines.stable_diffusion.safety_checker import StableDiffusionSafetyChecker

    source = diffusers.StableDiffusionPipeline.from_pretrained(tiny_sd_pipeline(tmp_path)[1])
    config = transformers.CLIPConfig(
        text_config=dict(vocab_size=99, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=37),
        vision_config=dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=37,
                           image_size=30, patch_size=2),
        projection_dim=16,
    )
    torch.manual_seed(0)
    checker = StableDiffusionSafetyChecker(config).eval()
    with torch.no_grad():
        checker.concept_embeds_weights.fill_(threshold)
        checker.special_care_embeds_weights.fill_(threshold)
    extractor = transformers.CLIPImageProcessor(size={"shortest_edge": 30}, crop_size={"height": 30, "width": 30})
    reference = diffusers.StableDiffusionPipeline(**{**source.components, "safety_checker": checker,
                                                     "feature_extractor": extractor})
    reference.save_pretrained(tmp_path / "with-checker")
    reference.set_progress_bar_config(disable=True)
    mine = DiffusionPipeline.from_pretrained(tmp_path / "with-checker")
    mine.set_progress_bar_config(disable=True)
    assert type(mine.safety_checker) is hugkit.StableDiffusionSafetyChecker
    expected = reference(PROMPT, num_inference_steps=2, generator=_seed(), output_type="np")
    got = mine(PROMPT, num_inference_steps=2, generator=_seed(), output_type="np")
    assert got.nsfw_content_detected == expected.nsfw_content_detected == [flagged]
    assert max_pixel_difference(got.images, expected.images) <= 1e-3
    assert (got.images.max() == 0.0) == flagged  # flagged images come back black


@pytest.mark.parametrize("scheme", ["dynamic-int8", "int8"])
def test_quantized_pipeline_draws_nearly_the_same_image(sd_folder, pipes, scheme):
    _, plain = pipes
    expected = plain(PROMPT, num_inference_steps=3, generator=_seed(), output_type="np").images
    pipe = DiffusionPipeline.from_pretrained(sd_folder, quantization=scheme)
    pipe.set_progress_bar_config(disable=True)
    assert any(getattr(m, "is_quantized", False) for m in pipe.unet.modules())
    assert any(getattr(m, "is_quantized", False) for m in pipe.text_encoder.modules())
    assert not any(getattr(m, "is_quantized", False) for m in pipe.vae.modules())
    got = pipe(PROMPT, num_inference_steps=3, generator=_seed(), output_type="np").images
    difference = max_pixel_difference(got, expected)
    assert 0 < difference <= 0.1, difference  # really quantized, and still the same picture
    with pytest.raises(ValueError, match="lacks"):
        DiffusionPipeline.from_pretrained(sd_folder, quantization={"unet_2": "int8"})
    with pytest.raises(ValueError, match="quantize when loading"):
        pipe.unet.save_pretrained(sd_folder.parent / "quantized-unet")


def test_quantized_linear_projection_unet(tmp_path):
    """SD 2.x UNets project in and out of the transformers with linear layers, which quantization replaces."""
    _, folder = tiny_sd_pipeline(tmp_path, unet_overrides={"use_linear_projection": True, "attention_head_dim": (2, 4)})
    plain = DiffusionPipeline.from_pretrained(folder)
    quantized = DiffusionPipeline.from_pretrained(folder, quantization="dynamic-int8")
    assert type(quantized.unet.down_blocks[1].attentions[0].proj_in).__name__ != "Linear"
    images = [p(PROMPT, num_inference_steps=2, generator=_seed(), output_type="np").images for p in (plain, quantized)]
    assert 0 < max_pixel_difference(*images) <= 0.1
