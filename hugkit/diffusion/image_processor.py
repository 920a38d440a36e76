"""Images in and out of the VAE: PIL / numpy / torch to a [-1, 1] tensor, and decoded tensors back to what was asked.

The conventions are diffusers' (VaeImageProcessor), since users pass images and masks as they would to diffusers:
numpy images are (batch, height, width, channels) floats in [0, 1]; torch images are (batch, channels, height,
width) in [0, 1]; PIL images are resized with Lanczos to a multiple of the VAE's scale factor, arrays and tensors
with nearest-neighbour interpolation. Masks use the same path with ``do_normalize=False, do_binarize=True,
do_convert_grayscale=True``.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from .configuration import ConfigMixin, register_to_config

OUTPUT_TYPES = ("pil", "np", "pt", "latent")
PIL_RESAMPLE = {"nearest": 0, "lanczos": 1, "bilinear": 2, "bicubic": 3, "box": 4, "hamming": 5}


def is_pil_image(value: Any) -> bool:
    return type(value).__module__.startswith("PIL.")


class VaeImageProcessor(ConfigMixin):
    @register_to_config
    def __init__(
        self,
        do_resize: bool = True,
        vae_scale_factor: int = 8,
        vae_latent_channels: int = 4,
        resample: str = "lanczos",
        reducing_gap: int | None = None,
        do_normalize: bool = True,
        do_binarize: bool = False,
        do_convert_rgb: bool = False,
        do_convert_grayscale: bool = False,
    ) -> None:
        if do_convert_rgb and do_convert_grayscale:
            raise ValueError("do_convert_rgb and do_convert_grayscale cannot both be True: pick the mode images should be in.")
        if resample not in PIL_RESAMPLE:
            raise ValueError(f"Unknown resample {resample!r}: expected one of {sorted(PIL_RESAMPLE)}.")

    # --- conversions ---------------------------------------------------------------------------
    @staticmethod
    def numpy_to_pil(images: np.ndarray) -> list:
        from PIL import Image

        if images.ndim == 3:
            images = images[None]
        images = (images * 255).round().astype("uint8")
        if images.shape[-1] == 1:
            return [Image.fromarray(image[..., 0], mode="L") for image in images]
        return [Image.fromarray(image) for image in images]

    @staticmethod
    def pil_to_numpy(images: Any) -> np.ndarray:
        images = images if isinstance(images, list) else [images]
        return np.stack([np.array(image).astype(np.float32) / 255.0 for image in images], axis=0)

    @staticmethod
    def numpy_to_pt(images: np.ndarray) -> torch.Tensor:
        if images.ndim == 3:
            images = images[..., None]
        return torch.from_numpy(images.transpose(0, 3, 1, 2))

    @staticmethod
    def pt_to_numpy(images: torch.Tensor) -> np.ndarray:
        return images.cpu().permute(0, 2, 3, 1).float().numpy()

    @staticmethod
    def normalize(images: Any) -> Any:
        return 2.0 * images - 1.0

    @staticmethod
    def denormalize(images: Any) -> Any:
        return (images * 0.5 + 0.5).clamp(0, 1)

    # --- input ---------------------------------------------------------------------------------
    def default_height_width(self, image: Any, height: int | None = None, width: int | None = None) -> tuple[int, int]:
        """The image's size (or the one asked), rounded down to a multiple of the VAE scale factor."""
        if is_pil_image(image):
            size = (image.height, image.width)
        elif isinstance(image, torch.Tensor):
            size = tuple(image.shape[2:4])
        else:
            size = tuple(image.shape[1:3])
        height = size[0] if height is None else height
        width = size[1] if width is None else width
        factor = self.config.vae_scale_factor
        return height - height % factor, width - width % factor

    get_default_height_width = default_height_width  # diffusers' name

    def resize(self, image: Any, height: int, width: int) -> Any:
        if is_pil_image(image):
            return image.resize((width, height), resample=PIL_RESAMPLE[self.config.resample], reducing_gap=self.config.reducing_gap)
        if isinstance(image, torch.Tensor):
            return F.interpolate(image, size=(height, width))
        return self.pt_to_numpy(F.interpolate(self.numpy_to_pt(image), size=(height, width)))

    def preprocess(self, image: Any, height: int | None = None, width: int | None = None) -> torch.Tensor:
        """One image or a list (PIL, numpy or torch) -> a (batch, channels, height, width) float tensor."""
        images = self._as_list(image)
        first = images[0]
        if is_pil_image(first):
            if self.config.do_resize:
                height, width = self.default_height_width(first, height, width)
                images = [self.resize(i, height, width) for i in images]
            if self.config.do_convert_rgb:
                images = [i.convert("RGB") for i in images]
            elif self.config.do_convert_grayscale:
                images = [i.convert("L") for i in images]
            tensor = self.numpy_to_pt(self.pil_to_numpy(images))
        elif isinstance(first, np.ndarray):
            if self.config.do_convert_grayscale and first.ndim == 3 and len(images) == 1:
                images = [first[None] if first.shape[-1] == 1 else first[..., None]]
            array = np.concatenate(images, axis=0) if images[0].ndim == 4 else np.stack(images, axis=0)
            tensor = self.numpy_to_pt(array)
            height, width = self.default_height_width(tensor, height, width)
            if self.config.do_resize:
                tensor = self.resize(tensor, height, width)
        else:
            if self.config.do_convert_grayscale and first.ndim == 3 and len(images) == 1:
                images = [first.unsqueeze(1)]
            tensor = torch.cat(images, dim=0) if images[0].ndim == 4 else torch.stack(images, dim=0)
            if self.config.do_convert_grayscale and tensor.ndim == 3:
                tensor = tensor.unsqueeze(1)
            if tensor.shape[1] == self.config.vae_latent_channels:
                return tensor  # already latents
            height, width = self.default_height_width(tensor, height, width)
            if self.config.do_resize:
                tensor = self.resize(tensor, height, width)
        do_normalize = self.config.do_normalize and not tensor.min() < 0  # [-1, 1] input is taken as is
        if do_normalize:
            tensor = self.normalize(tensor)
        if self.config.do_binarize:
            tensor = (tensor >= 0.5).to(tensor.dtype)
        return tensor

    @staticmethod
    def _as_list(image: Any) -> list:
        images = list(image) if isinstance(image, (list, tuple)) else [image]
        if not images:
            raise ValueError("Expected an image (PIL.Image, numpy array or torch tensor) or a list of them, got an empty list.")
        for item in images:
            if not (is_pil_image(item) or isinstance(item, (np.ndarray, torch.Tensor))):
                raise TypeError(
                    f"Expected images as PIL.Image, numpy arrays (batch, height, width, channels) in [0, 1] or torch "
                    f"tensors (batch, channels, height, width) in [0, 1]; got {type(item).__name__}."
                )
            if not is_pil_image(item) and item.ndim not in (2, 3, 4):
                raise ValueError(f"An image array must have 2 to 4 dimensions, got shape {tuple(item.shape)}.")
        kinds = {("pil" if is_pil_image(i) else type(i).__name__) for i in images}
        if len(kinds) > 1:
            raise TypeError(f"All images in a list must be of one kind, got {sorted(kinds)}.")
        return images

    # --- output --------------------------------------------------------------------------------
    def postprocess(self, image: torch.Tensor, output_type: str = "pil", do_denormalize: Sequence[bool] | None = None) -> Any:
        """A decoded (batch, channels, height, width) tensor in [-1, 1] as PIL images, a numpy array or a tensor."""
        if not isinstance(image, torch.Tensor):
            raise TypeError(f"postprocess expects a torch tensor, got {type(image).__name__}.")
        if output_type not in OUTPUT_TYPES:
            raise ValueError(f"Unknown output_type {output_type!r}: expected one of {', '.join(OUTPUT_TYPES)}.")
        if output_type == "latent":
            return image
        if do_denormalize is None:
            image = self.denormalize(image) if self.config.do_normalize else image
        else:
            image = torch.stack([self.denormalize(one) if flag else one for one, flag in zip(image, do_denormalize)])
        if output_type == "pt":
            return image
        array = self.pt_to_numpy(image)
        return array if output_type == "np" else self.numpy_to_pil(array)
