"""CLIPImageProcessor vs transformers' (the PIL backend, what transformers 5 gives without torchvision) on PIL,
numpy and torch inputs of every layout, old and new preprocessor_config.json files, saving, and bad input."""

from __future__ import annotations

import json

import numpy as np
import PIL.Image
import pytest
import torch

import transformers
from hugkit.image_processing import BatchFeature, CLIPImageProcessor

TOL = 1e-5
SMALL = dict(size={"shortest_edge": 30}, crop_size={"height": 30, "width": 30})


@pytest.fixture(autouse=True)
def _quiet():
    transformers.logging.set_verbosity_error()


def _rng():
    return np.random.default_rng(0)


def _inputs() -> dict[str, object]:
    rng = _rng()
    pixels = lambda *shape: rng.integers(0, 256, shape, dtype=np.uint8)  # noqa: E731
    return {
        "pil_rgb": PIL.Image.fromarray(pixels(47, 61, 3)),
        "pil_rgba": PIL.Image.fromarray(pixels(47, 61, 4)),
        "pil_grayscale": PIL.Image.fromarray(pixels(40, 33)),
        "pil_palette": PIL.Image.fromarray(pixels(35, 52, 3)).convert("P"),
        "pil_tall": PIL.Image.fromarray(pixels(90, 31, 3)),
        "numpy_uint8_hwc": pixels(64, 48, 3),
        "numpy_uint8_chw": pixels(3, 48, 64),
        "numpy_float01_hwc": rng.random((64, 48, 3)).astype(np.float32),
        "numpy_float255_chw": pixels(3, 50, 50).astype(np.float32),
        "numpy_rgba_uint8": pixels(20, 25, 4),
        "numpy_rgba_float": rng.random((20, 25, 4)).astype(np.float32),
        "torch_float01_chw": torch.from_numpy(rng.random((3, 41, 29)).astype(np.float32)),
        "torch_uint8_hwc": torch.from_numpy(pixels(33, 45, 3)),
        "smaller_than_crop": pixels(10, 12, 3),
        "numpy_batch": pixels(2, 33, 35, 3),
        "torch_batch": torch.from_numpy(pixels(2, 3, 40, 30)),
        "list_of_mixed": [PIL.Image.fromarray(pixels(31, 90, 3)), pixels(45, 45, 3), torch.rand(3, 30, 40)],
    }


@pytest.mark.parametrize("name", list(_inputs()))
def test_matches_transformers(name):
    image = _inputs()[name]
    expected = transformers.CLIPImageProcessor(**SMALL)(image, return_tensors="pt")["pixel_values"]
    out = CLIPImageProcessor(**SMALL)(image, return_tensors="pt")
    assert isinstance(out, BatchFeature) and out.pixel_values is out["pixel_values"]
    assert out.pixel_values.dtype == torch.float32
    assert out.pixel_values.shape == expected.shape
    assert (out.pixel_values - expected).abs().max().item() <= TOL


@pytest.mark.parametrize("overrides", [
    dict(do_center_crop=False),
    dict(do_normalize=False),
    dict(do_rescale=False),
    dict(do_resize=False, crop_size={"height": 20, "width": 20}),
    dict(size={"height": 24, "width": 40}, do_center_crop=False),
    dict(resample=2, image_mean=[0.5, 0.5, 0.5], image_std=[0.25, 0.5, 1.0]),
    dict(do_convert_rgb=False),
])
def test_settings_match_transformers(overrides):
    image = _inputs()["numpy_uint8_hwc"]
    settings = {**SMALL, **overrides}
    expected = transformers.CLIPImageProcessor(**settings)(image, return_tensors="pt")["pixel_values"]
    got = CLIPImageProcessor(**settings)(image, return_tensors="pt")["pixel_values"]
    assert got.shape == expected.shape and (got - expected).abs().max().item() <= TOL
    per_call = CLIPImageProcessor(**SMALL)(image, return_tensors="pt", **overrides)["pixel_values"]
    assert torch.equal(per_call, got)


@pytest.mark.parametrize("layout", ["old", "new"])
def test_stable_diffusion_feature_extractor_configs(tmp_path, layout):
    """SD 1.x folders write size/crop_size as ints (feature_extractor_type CLIPFeatureExtractor); newer ones dicts."""
    config = {
        "do_center_crop": True, "do_convert_rgb": True, "do_normalize": True, "do_resize": True, "resample": 3,
        "image_mean": [0.48145466, 0.4578275, 0.40821073], "image_std": [0.26862954, 0.26130258, 0.27577711],
    }
    if layout == "old":
        config.update(crop_size=224, size=224, feature_extractor_type="CLIPFeatureExtractor")
    else:
        config.update(crop_size={"height": 224, "width": 224}, size={"shortest_edge": 224},
                      image_processor_type="CLIPImageProcessor", rescale_factor=1 / 255, do_rescale=True)
    (tmp_path / "preprocessor_config.json").write_text(json.dumps(config))
    ours = CLIPImageProcessor.from_pretrained(tmp_path)
    reference = transformers.CLIPImageProcessor.from_pretrained(tmp_path)
    assert ours.size == {"shortest_edge": 224} and ours.crop_size == {"height": 224, "width": 224}
    image = PIL.Image.fromarray(_rng().integers(0, 256, (300, 260, 3), dtype=np.uint8))
    got, expected = ours(image)["pixel_values"], reference(image, return_tensors="pt")["pixel_values"]
    assert got.shape == (1, 3, 224, 224) and (got - expected).abs().max().item() <= TOL

    ours.save_pretrained(tmp_path / "saved")
    saved = json.loads((tmp_path / "saved" / "preprocessor_config.json").read_text())
    assert saved["image_processor_type"] == "CLIPImageProcessor" and saved["size"] == {"shortest_edge": 224}
    if layout == "old":
        assert saved["feature_extractor_type"] == "CLIPFeatureExtractor"  # unknown keys are kept
    for loaded in (CLIPImageProcessor.from_pretrained(tmp_path / "saved"),
                   transformers.CLIPImageProcessor.from_pretrained(tmp_path / "saved")):
        assert (loaded(image, return_tensors="pt")["pixel_values"] - expected).abs().max().item() <= TOL


def test_return_types_and_device_move():
    processor = CLIPImageProcessor(**SMALL)
    image = _inputs()["numpy_uint8_hwc"]
    as_numpy = processor(image, return_tensors="np")["pixel_values"]
    as_list = processor([image, image], return_tensors=None)["pixel_values"]
    assert isinstance(as_numpy, np.ndarray) and as_numpy.shape == (1, 3, 30, 30)
    assert isinstance(as_list, list) and len(as_list) == 2 and np.array_equal(as_list[0], as_numpy[0])
    moved = processor(image).to("cpu", dtype=torch.float16)
    assert moved.pixel_values.dtype == torch.float16


def test_bad_inputs():
    processor = CLIPImageProcessor(**SMALL)
    with pytest.raises(TypeError, match="PIL images, numpy arrays or torch tensors, found str"):
        processor("cat.png")
    with pytest.raises(ValueError, match="empty list"):
        processor([])
    with pytest.raises(ValueError, match="channel axis"):
        processor(np.zeros((20, 20, 7), dtype=np.uint8))
    with pytest.raises(ValueError, match=r"values in \[0, 1\].*found \[-0.5"):
        processor(np.full((20, 20, 3), -0.5, dtype=np.float32))
    with pytest.raises(ValueError, match="0..255"):
        processor(np.full((20, 20, 3), 300.0, dtype=np.float32))
    with pytest.raises(ValueError, match="different sizes"):
        processor([np.zeros((20, 30, 3), np.uint8), np.zeros((20, 40, 3), np.uint8)], do_center_crop=False)
    with pytest.raises(ValueError, match="shortest_edge"):
        CLIPImageProcessor(size={"longest": 3})
    with pytest.raises(ValueError, match="resample"):
        CLIPImageProcessor(resample="smooth")
    with pytest.raises(ValueError, match="return_tensors"):
        processor(np.zeros((20, 20, 3), np.uint8), return_tensors="tf")
