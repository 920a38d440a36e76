"""CLIPImageProcessor: images to CLIP's ``pixel_values``, computed as transformers' (PIL backend) computes them.

Per image: convert to RGB (transparency composited onto white), resize the shortest edge with PIL (bicubic),
center-crop, rescale by 1/255 and normalise with the config's mean and std. Stable Diffusion folders ship the
settings as ``feature_extractor/preprocessor_config.json``; old ones write ``size`` and ``crop_size`` as plain ints.

Inputs follow transformers' conventions: PIL images; numpy arrays and torch tensors channels-last (H, W, C) or
channels-first (C, H, W), one image or a batch. Integer-valued arrays are pixel values 0..255; other float arrays
must lie in [0, 1] and are scaled to 0..255 for PIL's resize and back, then rescaled by 1/255 like any input (so,
as in transformers, pass 0..255 values, or set ``do_rescale=False`` for images already in [0, 1]).
"""

from __future__ import annotations

import copy
import json
import logging
import math
import os
from pathlib import Path
from typing import Any

import numpy as np
import PIL.Image

from .feature_batch import BatchFeature

logger = logging.getLogger(__name__)

PREPROCESSOR_CONFIG_NAME = "preprocessor_config.json"
OPENAI_CLIP_MEAN = [0.48145466, 0.4578275, 0.40821073]
OPENAI_CLIP_STD = [0.26862954, 0.26130258, 0.27577711]
_CHANNEL_COUNTS = (1, 3, 4)


class CLIPImageProcessor:
    """transformers' CLIPImageProcessor settings and results (``CLIPFeatureExtractor`` is the same class)."""

    config_name = PREPROCESSOR_CONFIG_NAME
    model_input_names = ["pixel_values"]
    defaults: dict[str, Any] = {
        "do_resize": True,
        "size": {"shortest_edge": 224},
        "resample": 3,  # PIL bicubic
        "do_center_crop": True,
        "crop_size": {"height": 224, "width": 224},
        "do_rescale": True,
        "rescale_factor": 1 / 255,
        "do_normalize": True,
        "image_mean": OPENAI_CLIP_MEAN,
        "image_std": OPENAI_CLIP_STD,
        "do_convert_rgb": True,
    }

    def __init__(self, **kwargs: Any) -> None:
        settings = {**copy.deepcopy(self.defaults), **kwargs}
        self.do_resize = bool(settings.pop("do_resize"))
        self.size = _size_dict(settings.pop("size"), "size", int_means="shortest_edge")
        self.resample = _resample(settings.pop("resample"))
        self.do_center_crop = bool(settings.pop("do_center_crop"))
        self.crop_size = _size_dict(settings.pop("crop_size"), "crop_size", int_means="square")
        self.do_rescale = bool(settings.pop("do_rescale"))
        self.rescale_factor = float(settings.pop("rescale_factor"))
        self.do_normalize = bool(settings.pop("do_normalize"))
        self.image_mean = list(settings.pop("image_mean"))
        self.image_std = list(settings.pop("image_std"))
        self.do_convert_rgb = bool(settings.pop("do_convert_rgb"))
        settings.pop("image_processor_type", None)
        # Everything else (feature_extractor_type, processor_class, ...) is kept and written back on save.
        self.extra_settings = settings

    # --- loading and saving ----------------------------------------------------------------------
    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path: str | os.PathLike, **kwargs: Any) -> "CLIPImageProcessor":
        from .config import pop_hub_kwargs, read_json
        from .hub import resolve

        hub_kwargs = pop_hub_kwargs(kwargs)
        folder = resolve(pretrained_model_name_or_path, **hub_kwargs)
        settings = read_json(Path(folder) / PREPROCESSOR_CONFIG_NAME, what="image processor config")
        return cls(**{**settings, **kwargs})

    def to_dict(self) -> dict[str, Any]:
        return {
            **copy.deepcopy(self.extra_settings),
            "image_processor_type": "CLIPImageProcessor",
            "do_resize": self.do_resize, "size": dict(self.size), "resample": self.resample,
            "do_center_crop": self.do_center_crop, "crop_size": dict(self.crop_size),
            "do_rescale": self.do_rescale, "rescale_factor": self.rescale_factor,
            "do_normalize": self.do_normalize, "image_mean": list(self.image_mean), "image_std": list(self.image_std),
            "do_convert_rgb": self.do_convert_rgb,
        }

    def save_pretrained(self, save_directory: str | os.PathLike) -> Path:
        directory = Path(save_directory)
        directory.mkdir(parents=True, exist_ok=True)
        path = directory / PREPROCESSOR_CONFIG_NAME
        path.write_text(json.dumps(self.to_dict(), indent=2, sort_keys=True) + "\n", encoding="utf-8")
        return path

    def __repr__(self) -> str:
        return f"{type(self).__name__} {json.dumps(self.to_dict(), indent=2, sort_keys=True)}"

    # --- processing ------------------------------------------------------------------------------
    def __call__(self, images: Any, return_tensors: str | None = "pt", **overrides: Any) -> BatchFeature:
        return self.preprocess(images, return_tensors=return_tensors, **overrides)

    def preprocess(self, images: Any, return_tensors: str | None = "pt", **overrides: Any) -> BatchFeature:
        """``{"pixel_values": (batch, 3, crop height, crop width) float32}``. Any setting can be overridden per call
        (``do_center_crop=False``, ``size={"shortest_edge": 336}``, ...)."""
        settings = self if not overrides else type(self)(**{**self.to_dict(), **overrides})
        pixels = [settings._process_one(image) for image in _flat_images(images)]
        if return_tensors is None:
            return BatchFeature(pixel_values=pixels)
        if len({p.shape for p in pixels}) > 1:
            raise ValueError(
                f"The processed images have different sizes ({sorted({p.shape for p in pixels})}), so they cannot be "
                "stacked into one tensor; keep do_center_crop=True, or pass return_tensors=None for a list."
            )
        stacked = np.stack(pixels)
        if return_tensors == "np":
            return BatchFeature(pixel_values=stacked)
        if return_tensors == "pt":
            import torch

            return BatchFeature(pixel_values=torch.from_numpy(stacked))
        raise ValueError(f"return_tensors must be 'pt', 'np' or None, got {return_tensors!r}.")

    def _process_one(self, image: Any) -> np.ndarray:
        array = self._channels_first(image)
        if self.do_resize:
            array = _pil_resize(array, self._resized_shape(array.shape[1:]), self.resample)
        if self.do_center_crop:
            array = _center_crop(array, self.crop_size["height"], self.crop_size["width"])
        if self.do_rescale:
            array = (array.astype(np.float64) * self.rescale_factor).astype(np.float32)
        if self.do_normalize:
            if not np.issubdtype(array.dtype, np.floating):
                array = array.astype(np.float32)
            channels = array.shape[0]
            mean = np.asarray(_per_channel(self.image_mean, channels, "image_mean"), dtype=array.dtype)
            std = np.asarray(_per_channel(self.image_std, channels, "image_std"), dtype=array.dtype)
            array = (array - mean[:, None, None]) / std[:, None, None]
        return array

    def _channels_first(self, image: Any) -> np.ndarray:
        """One image as a (channels, height, width) array, converted to RGB when do_convert_rgb is set."""
        if isinstance(image, PIL.Image.Image):
            if self.do_convert_rgb:
                image = _pil_to_rgb(image)
            array = np.asarray(image)
            return array[None] if array.ndim == 2 else np.moveaxis(array, -1, 0)
        array = _to_numpy(image)
        if array.ndim == 2:
            array = array[None]
        if array.ndim != 3:
            raise ValueError(f"An image should have 2 or 3 dimensions (H, W[, C]) or (C, H, W), found shape {array.shape}.")
        # Channels first wins when both ends could be channels, as in transformers.
        if array.shape[0] not in _CHANNEL_COUNTS:
            if array.shape[-1] not in _CHANNEL_COUNTS:
                raise ValueError(
                    f"Cannot tell the channel axis of an image of shape {array.shape}: neither the first nor the last "
                    f"dimension is a channel count {_CHANNEL_COUNTS}. Pass (H, W, C) or (C, H, W) images."
                )
            array = np.moveaxis(array, -1, 0)
        return _array_to_rgb(array) if self.do_convert_rgb else array

    def _resized_shape(self, shape: tuple[int, int]) -> tuple[int, int]:
        height, width = shape
        if "shortest_edge" in self.size:
            target = self.size["shortest_edge"]
            short, long = (width, height) if width <= height else (height, width)
            new_long = int(target * long / short)
            return (new_long, target) if width <= height else (target, new_long)
        return self.size["height"], self.size["width"]


# --- helpers -------------------------------------------------------------------------------------


def _size_dict(value: Any, name: str, int_means: str) -> dict[str, int]:
    """Old configs write an int: the shortest edge for ``size``, a square for ``crop_size`` (transformers' reading)."""
    if isinstance(value, int):
        return {"shortest_edge": value} if int_means == "shortest_edge" else {"height": value, "width": value}
    if isinstance(value, (list, tuple)) and len(value) == 2:
        return {"height": int(value[0]), "width": int(value[1])}
    if isinstance(value, dict):
        if set(value) == {"shortest_edge"} or set(value) == {"height", "width"}:
            return {k: int(v) for k, v in value.items()}
    raise ValueError(
        f"{name} should be an int, (height, width), {{'shortest_edge': n}} or {{'height': h, 'width': w}}; found {value!r}."
    )


def _resample(value: Any) -> int:
    try:
        return int(PIL.Image.Resampling(int(value)))
    except (TypeError, ValueError):
        raise ValueError(
            f"resample should be a PIL resampling filter (0 nearest, 1 lanczos, 2 bilinear, 3 bicubic, 4 box, "
            f"5 hamming), found {value!r}."
        ) from None


def _per_channel(values: list[float] | float, channels: int, name: str) -> list[float]:
    values = list(values) if isinstance(values, (list, tuple)) else [float(values)] * channels
    if len(values) != channels:
        raise ValueError(f"{name} has {len(values)} values, but the image has {channels} channels.")
    return values


def _is_torch(value: Any) -> bool:
    return type(value).__module__.startswith("torch") and hasattr(value, "detach")


def _is_image(value: Any) -> bool:
    return isinstance(value, (PIL.Image.Image, np.ndarray)) or _is_torch(value)


def _flat_images(images: Any) -> list[Any]:
    """One image, a batch array (N, ...), or a (nested) list of images -> a flat list of single images."""
    if isinstance(images, (list, tuple)):
        if not images:
            raise ValueError("No images were given (an empty list).")
        flat: list[Any] = []
        for item in images:
            flat.extend(_flat_images(item) if isinstance(item, (list, tuple)) or _ndim(item) == 4 else [item])
        for item in flat:
            if not _is_image(item):
                raise TypeError(f"Images should be PIL images, numpy arrays or torch tensors, found {type(item).__name__}.")
        return flat
    if not _is_image(images):
        raise TypeError(f"Images should be PIL images, numpy arrays or torch tensors, found {type(images).__name__}.")
    return list(images) if _ndim(images) == 4 else [images]


def _ndim(value: Any) -> int:
    return getattr(value, "ndim", 0) if not isinstance(value, PIL.Image.Image) else 3


def _to_numpy(image: Any) -> np.ndarray:
    if _is_torch(image):
        image = image.detach().cpu()
        if str(image.dtype) == "torch.bfloat16":  # numpy has no bfloat16
            image = image.float()
        image = image.numpy()
    return image


def _pil_to_rgb(image: PIL.Image.Image) -> PIL.Image.Image:
    if "A" in image.getbands() or image.info.get("transparency") is not None:
        rgba = image.convert("RGBA")
        white = PIL.Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return PIL.Image.alpha_composite(white, rgba).convert("RGB")
    return image.convert("RGB")


def _array_to_rgb(array: np.ndarray) -> np.ndarray:
    """(C, H, W) with 1, 3 or 4 channels -> 3 channels; alpha composited onto white."""
    channels = array.shape[0]
    if channels == 1:
        return np.repeat(array, 3, axis=0)
    if channels == 4:
        is_int = np.issubdtype(array.dtype, np.integer)
        if not is_int and (array.min() < 0.0 or array.max() > 1.0):
            raise ValueError(
                f"An RGBA float image must hold values in [0, 1] to be composited, found [{array.min()}, {array.max()}]."
            )
        white = 255 if is_int else 1.0
        alpha = array[3:4] / white
        blended = alpha * array[:3] + (1 - alpha) * white
        return np.round(blended).astype(array.dtype) if is_int else blended.astype(array.dtype)
    return array


def _pil_resize(array: np.ndarray, shape: tuple[int, int], resample: int) -> np.ndarray:
    """Resize a (C, H, W) array with PIL. PIL holds uint8 only: floats in [0, 1] go through 0..255 (truncated, as
    transformers does) and come back divided by 255; integer-valued arrays go through as they are."""
    scaled = _needs_scaling_for_pil(array)
    pixels = np.moveaxis(array, 0, -1)
    if scaled:
        pixels = (pixels.astype(np.float64) * 255).astype(np.float32)
    pixels = pixels.astype(np.uint8)
    image = PIL.Image.fromarray(pixels[..., 0] if pixels.shape[-1] == 1 else pixels)
    resized = np.asarray(image.resize((shape[1], shape[0]), resample=resample))
    resized = np.moveaxis(resized[..., None] if resized.ndim == 2 else resized, -1, 0)
    return (resized.astype(np.float64) * (1 / 255)).astype(np.float32) if scaled else resized


def _needs_scaling_for_pil(array: np.ndarray) -> bool:
    if array.dtype == np.uint8:
        return False
    if np.allclose(array, array.astype(int)):
        if array.min() >= 0 and array.max() <= 255:
            return False
        raise ValueError(
            f"Integer-valued images must hold pixel values 0..255, found [{array.min()}, {array.max()}]."
        )
    if array.min() >= 0 and array.max() <= 1:
        return True
    raise ValueError(
        f"Float images must hold values in [0, 1] (or integer pixel values 0..255), found [{array.min()}, {array.max()}]."
    )


def _center_crop(array: np.ndarray, height: int, width: int) -> np.ndarray:
    """The central (height, width) window of a (C, H, W) array, zero-padded first where the image is smaller."""
    _, rows, cols = array.shape
    top, left = (rows - height) // 2, (cols - width) // 2
    if top >= 0 and left >= 0:
        return array[:, top : top + height, left : left + width]
    padded_rows, padded_cols = max(height, rows), max(width, cols)
    pad_top, pad_left = math.ceil((padded_rows - rows) / 2), math.ceil((padded_cols - cols) / 2)
    padded = np.zeros_like(array, shape=(array.shape[0], padded_rows, padded_cols))
    padded[:, pad_top : pad_top + rows, pad_left : pad_left + cols] = array
    top, left = top + pad_top, left + pad_left
    return padded[:, max(0, top) : min(padded_rows, top + height), max(0, left) : min(padded_cols, left + width)]
