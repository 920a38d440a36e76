"""StableDiffusionSafetyChecker vs diffusers' on the same tiny random checkpoint: which images are flagged
(plain hits, misses, and hits that only the special-care adjustment makes), the blacked-out images, both
checkpoint layouts, and saving back to diffusers."""

from __future__ import annotations

import logging

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

import transformers
from hugkit.diffusion.safety_checker import StableDiffusionSafetyChecker
from hugkit.models.clip import CLIPConfig

diffusers_checker = pytest.importorskip("diffusers.pipelines.stable_diffusion.safety_checker")

CONFIG = dict(
    text_config=dict(vocab_size=99, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=37),
    vision_config=dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=37,
                       image_size=30, patch_size=2),
    projection_dim=16,
)
BATCH = 6
# Image 0 hits concept 0; image 3 scores 0.005 *below* concept 1's threshold and is flagged only because it also
# hits special-care concept 0 (+0.01); the other images are clean.
EXPECTED_FLAGS = [True, False, False, True, False, False]


@pytest.fixture(autouse=True)
def _single_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    transformers.logging.set_verbosity_error()
    yield
    torch.set_num_threads(threads)


def _cos(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return torch.nn.functional.normalize(a) @ torch.nn.functional.normalize(b).t()


def _only_like(embeds: torch.Tensor, index: int) -> torch.Tensor:
    """A direction with positive cosine to image ``index``'s embedding and zero cosine to every other image's."""
    others = torch.cat([embeds[:index], embeds[index + 1 :]])
    basis, _ = torch.linalg.qr(others.t())
    return embeds[index] - basis @ (basis.t() @ embeds[index])


def _calibrate(reference, pixels: torch.Tensor) -> None:
    """Concept embeddings and thresholds that produce EXPECTED_FLAGS, with every decision well away from the
    3-decimal rounding except image 3's, which the 0.01 special-care adjustment has to make."""
    generator = torch.Generator().manual_seed(7)
    with torch.no_grad():
        embeds = reference.visual_projection(reference.vision_model(pixels)[1])
        concepts = torch.randn(17, 16, generator=generator)
        concepts[0], concepts[1] = _only_like(embeds, 0), _only_like(embeds, 3)
        special = torch.randn(3, 16, generator=generator)
        special[0] = _only_like(embeds, 3)
        concept_cos, special_cos = _cos(embeds, concepts), _cos(embeds, special)
        concept_thresholds = concept_cos.max(dim=0).values + 0.2  # nothing is flagged ...
        concept_thresholds[0] = concept_cos[0, 0] / 2  # ... but image 0, by concept 0
        concept_thresholds[1] = concept_cos[3, 1] + 0.005  # image 3 misses concept 1 by 0.005
        special_thresholds = special_cos.max(dim=0).values + 0.2
        special_thresholds[0] = special_cos[3, 0] / 2
        assert min(concept_cos[0, 0] / 2, special_cos[3, 0] / 2, concept_thresholds[1]) > 0.01  # far from rounding
        reference.concept_embeds.copy_(concepts)
        reference.special_care_embeds.copy_(special)
        reference.concept_embeds_weights.copy_(concept_thresholds)
        reference.special_care_embeds_weights.copy_(special_thresholds)


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    """(reference checker, its folder saved by diffusers + transformers 5, clip_input pixels)."""
    torch.manual_seed(0)
    reference = diffusers_checker.StableDiffusionSafetyChecker(transformers.CLIPConfig(**CONFIG)).eval()
    generator = torch.Generator().manual_seed(5)
    with torch.no_grad():  # larger than transformers' init, so the images' embeddings differ clearly
        for name, param in reference.vision_model.named_parameters():
            offset = 1.0 if "norm" in name and name.endswith("weight") else 0.0
            param.copy_(torch.randn(param.shape, generator=generator) * 0.3 + offset)
        reference.visual_projection.weight.normal_(0.0, 0.3, generator=generator)
    pixels = torch.randn(BATCH, 3, 30, 30, generator=torch.Generator().manual_seed(1))
    _calibrate(reference, pixels)
    folder = tmp_path_factory.mktemp("safety_checker")
    reference.save_pretrained(folder)
    return reference, folder, pixels


def _images(kind: str):
    rng = np.random.default_rng(2)
    if kind == "numpy":  # what diffusers' pipeline passes for output_type="np"/"pil": (batch, H, W, C) in [0, 1]
        return rng.random((BATCH, 16, 16, 3), dtype=np.float32)
    if kind == "torch":  # what it passes for output_type="pt": (batch, C, H, W)
        return torch.from_numpy(rng.random((BATCH, 3, 16, 16), dtype=np.float32))
    return [rng.random((16, 16, 3), dtype=np.float32) for _ in range(BATCH)]


@pytest.mark.parametrize("kind", ["numpy", "torch", "list"])
def test_flags_and_black_images_match_diffusers(checkpoint, kind, caplog):
    reference, folder, pixels = checkpoint
    with caplog.at_level(logging.WARNING, logger="hugkit"):
        checker = StableDiffusionSafetyChecker.from_pretrained(folder)
    assert not caplog.records, "loading a matching checkpoint should be quiet"
    original = _images(kind)
    copy = (lambda x: x.clone()) if kind == "torch" else (lambda x: [a.copy() for a in x] if kind == "list" else x.copy())
    expected_images, expected_flags = reference(clip_input=pixels, images=copy(original))
    with caplog.at_level(logging.WARNING, logger="hugkit"):
        images, flags = checker(clip_input=pixels, images=copy(original))
    assert expected_flags == EXPECTED_FLAGS
    assert flags == EXPECTED_FLAGS and all(type(flag) is bool for flag in flags)
    assert any("NSFW" in record.message for record in caplog.records)
    for index in range(BATCH):
        mine, theirs = np.asarray(images[index]), np.asarray(expected_images[index])
        assert np.array_equal(mine, theirs), index
        assert (mine == 0).all() == EXPECTED_FLAGS[index]
        if not EXPECTED_FLAGS[index]:
            assert np.array_equal(mine, np.asarray(original[index]))  # clean images are returned untouched
    assert type(images) is type(original)


def test_special_care_adjustment_is_what_flags_image_3(checkpoint):
    """Without the special-care hit, image 3's concept score stays 0.005 below its threshold."""
    reference, folder, pixels = checkpoint
    checker = StableDiffusionSafetyChecker.from_pretrained(folder)
    with torch.no_grad():
        for model in (reference, checker):
            model.special_care_embeds_weights.add_(1.0)
    try:
        _, expected_flags = reference(clip_input=pixels, images=_images("numpy"))
        _, flags = checker(clip_input=pixels, images=_images("numpy"))
    finally:
        with torch.no_grad():
            reference.special_care_embeds_weights.sub_(1.0)
    assert flags == expected_flags == [True, False, False, False, False, False]


def test_nested_layout_and_saving_back_to_diffusers(checkpoint, tmp_path):
    """Checkpoints saved before transformers 5 (every real Stable Diffusion safety_checker/) nest the vision tower
    as vision_model.vision_model.*; hugkit saves that layout and diffusers reads it back."""
    reference, folder, pixels = checkpoint
    flat = load_file(folder / "model.safetensors")
    assert any(k.startswith("vision_model.embeddings.") for k in flat)
    nested = {(f"vision_model.{k}" if k.startswith("vision_model.") else k): v for k, v in flat.items()}
    nested["vision_model.vision_model.embeddings.position_ids"] = torch.arange(226)[None]  # old persistent buffer
    (tmp_path / "nested").mkdir()
    (tmp_path / "nested" / "config.json").write_text((folder / "config.json").read_text())
    save_file(nested, tmp_path / "nested" / "model.safetensors")
    checker = StableDiffusionSafetyChecker.from_pretrained(tmp_path / "nested")
    _, flags = checker(clip_input=pixels, images=_images("numpy"))
    assert flags == EXPECTED_FLAGS

    checker.save_pretrained(tmp_path / "saved")
    saved_keys = set(load_file(tmp_path / "saved" / "model.safetensors"))
    assert "vision_model.vision_model.embeddings.class_embedding" in saved_keys and "concept_embeds" in saved_keys
    back = diffusers_checker.StableDiffusionSafetyChecker.from_pretrained(tmp_path / "saved").eval()
    _, back_flags = back(clip_input=pixels, images=_images("numpy"))
    assert back_flags == EXPECTED_FLAGS
    with torch.no_grad():
        torch.testing.assert_close(back.vision_model(pixels)[1], reference.vision_model(pixels)[1], atol=1e-5, rtol=0)


def test_config_is_a_clip_config_and_loading_is_strict(checkpoint, tmp_path):
    _, folder, _ = checkpoint
    checker = StableDiffusionSafetyChecker.from_pretrained(folder)
    assert isinstance(checker.config, CLIPConfig) and checker.config.projection_dim == 16
    assert checker.concept_embeds.shape == (17, 16) and not checker.concept_embeds.requires_grad
    state = load_file(folder / "model.safetensors")
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "config.json").write_text((folder / "config.json").read_text())
    save_file({k: v for k, v in state.items() if k != "special_care_embeds"}, tmp_path / "broken" / "model.safetensors")
    with pytest.raises(ValueError, match="missing keys.*special_care_embeds"):
        StableDiffusionSafetyChecker.from_pretrained(tmp_path / "broken")


def test_bad_inputs(checkpoint):
    _, folder, pixels = checkpoint
    checker = StableDiffusionSafetyChecker.from_pretrained(folder)
    with pytest.raises(ValueError, match="6 images but clip_input holds 2"):
        checker(clip_input=pixels[:2], images=_images("numpy"))
    with pytest.raises(TypeError, match="pixel_values tensor"):
        checker(clip_input=pixels.numpy(), images=_images("numpy"))
    with pytest.raises(ValueError, match="takes 30x30 images, found 32x32"):
        checker(clip_input=torch.randn(BATCH, 3, 32, 32), images=_images("numpy"))
