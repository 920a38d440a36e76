"""StableDiffusionInpaintPipeline: repaint the white part of a mask with SD 1.x / 2.x checkpoints, as diffusers does.

Two kinds of UNet work here. Inpainting checkpoints have 9 input channels: the latents, the mask (1) and the
latents of the masked image (4) are stacked at every step. A plain 4-channel UNet keeps the unmasked part instead:
after each step the latents outside the mask are replaced by the original image's latents, noised to the next
step's level. ``strength`` < 1 starts from the noised image instead of pure noise. ``padding_mask_crop`` works on
the masked region only (cropped with a margin, resized to the working size) and pastes the result back.
"""

from __future__ import annotations

from typing import Any, Callable, Iterator

import numpy as np
import torch
import torch.nn.functional as F

from ..denoising import DenoisingStep, check_callback_inputs, retrieve_timesteps, step_kwargs
from ..image_processor import PIL_RESAMPLE, VaeImageProcessor, is_pil_image
from ..utils import randn_tensor
from .stable_diffusion import StableDiffusionPipeline, _batch_size, check_generators, check_num_images, check_prompts
from .stable_diffusion_img2img import (
    check_image_channels,
    check_image_input,
    check_steps_left,
    check_strength,
    encode_vae_image,
    get_timesteps,
    repeat_to_batch,
)


class StableDiffusionInpaintPipeline(StableDiffusionPipeline):
    """Inpainting: the components and arguments of diffusers' pipeline of the same name."""

    _callback_tensor_inputs = ["latents", "prompt_embeds", "negative_prompt_embeds", "mask", "masked_image_latents"]

    def __init__(
        self,
        vae: Any,
        text_encoder: Any,
        tokenizer: Any,
        unet: Any,
        scheduler: Any,
        safety_checker: Any = None,
        feature_extractor: Any = None,
        image_encoder: Any = None,
        requires_safety_checker: bool = True,
    ) -> None:
        super().__init__(vae, text_encoder, tokenizer, unet, scheduler, safety_checker, feature_extractor,
                         image_encoder, requires_safety_checker)
        # Masks: no [-1, 1] normalisation, one grey channel, values snapped to 0 / 1.
        self.mask_processor = VaeImageProcessor(
            vae_scale_factor=self.vae_scale_factor, do_normalize=False, do_binarize=True, do_convert_grayscale=True
        )

    # --- checks --------------------------------------------------------------------------------
    def check_inputs(
        self,
        prompt: Any,
        image: Any,
        mask_image: Any,
        height: int,
        width: int,
        strength: float,
        output_type: str = "pil",
        negative_prompt: Any = None,
        prompt_embeds: torch.Tensor | None = None,
        negative_prompt_embeds: torch.Tensor | None = None,
        callback_on_step_end_tensor_inputs: Any = None,
        padding_mask_crop: int | None = None,
    ) -> None:
        check_strength(strength)
        factor = self.vae_scale_factor
        if height % factor or width % factor:
            raise ValueError(
                f"height and width must be multiples of {factor} (the VAE's scale factor), got {height}x{width}. "
                f"Try {height - height % factor}x{width - width % factor}."
            )
        check_callback_inputs(callback_on_step_end_tensor_inputs, self._callback_tensor_inputs)
        check_prompts(prompt, prompt_embeds, negative_prompt, negative_prompt_embeds)
        check_image_input(image)
        if mask_image is None:
            raise ValueError("mask_image is required: white (1) marks what to repaint, black (0) what to keep.")
        channels = self.unet.config.in_channels
        if channels not in (4, 9):
            raise ValueError(
                f"The UNet has {channels} input channels; inpainting needs an inpainting UNet (9: latents, mask, "
                "masked image latents) or a plain one (4)."
            )
        if padding_mask_crop is not None:
            if not (is_pil_image(image) and is_pil_image(mask_image)):
                raise ValueError(
                    "padding_mask_crop needs image and mask_image as single PIL images, got "
                    f"{type(image).__name__} and {type(mask_image).__name__}."
                )
            if output_type != "pil":
                raise ValueError(f"padding_mask_crop pastes the result into the original PIL image, so output_type "
                                 f"must be 'pil', got {output_type!r}.")

    def get_timesteps(self, num_inference_steps: int, strength: float, device: Any = None) -> tuple[torch.Tensor, int]:
        return get_timesteps(self.scheduler, num_inference_steps, strength)

    # --- latents -------------------------------------------------------------------------------
    def _encode_vae_image(self, image: torch.Tensor, generator: Any) -> torch.Tensor:
        return self.vae.config.scaling_factor * encode_vae_image(self.vae, image, generator)

    def prepare_latents(
        self,
        batch_size: int,
        num_channels_latents: int,
        height: int,
        width: int,
        dtype: torch.dtype,
        device: torch.device,
        generator: Any,
        latents: torch.Tensor | None = None,
        image: torch.Tensor | None = None,
        timestep: torch.Tensor | None = None,
        is_strength_max: bool = True,
        return_noise: bool = False,
        return_image_latents: bool = False,
    ) -> tuple[torch.Tensor, ...]:
        """(latents[, noise][, image latents]): pure noise at strength 1, else the image's latents noised to
        ``timestep``. The image latents are what a 4-channel UNet's unmasked area is reset to after each step."""
        shape = (batch_size, num_channels_latents, int(height) // self.vae_scale_factor, int(width) // self.vae_scale_factor)
        check_generators(generator, batch_size)
        if (image is None or timestep is None) and not is_strength_max:
            raise ValueError("With strength < 1 the starting latents mix the image with noise: pass image and timestep.")
        image_latents = None
        if return_image_latents or (latents is None and not is_strength_max):
            image = image.to(device=device, dtype=dtype)
            image_latents = image if image.shape[1] == num_channels_latents else self._encode_vae_image(image, generator)
            image_latents = repeat_to_batch(image_latents, batch_size, "images")
        if latents is None:
            noise = randn_tensor(shape, generator=generator, device=device, dtype=dtype)
            if is_strength_max:
                latents = noise * self.scheduler.init_noise_sigma
            else:
                latents = self.scheduler.add_noise(image_latents, noise, timestep)
        else:
            if tuple(latents.shape) != shape:
                raise ValueError(f"latents should have shape {shape} for this batch and size, got {tuple(latents.shape)}.")
            noise = latents.to(device)
            latents = noise * self.scheduler.init_noise_sigma
        outputs: tuple[torch.Tensor, ...] = (latents,)
        if return_noise:
            outputs += (noise,)
        if return_image_latents:
            outputs += (image_latents,)
        return outputs

    def prepare_mask_latents(
        self, mask: torch.Tensor, masked_image: torch.Tensor, batch_size: int, height: int, width: int,
        dtype: torch.dtype, device: torch.device, generator: Any, do_classifier_free_guidance: bool,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The mask at latent size and the masked image's latents, tiled to the batch (and doubled when guided)."""
        size = (height // self.vae_scale_factor, width // self.vae_scale_factor)
        mask = F.interpolate(mask, size=size).to(device=device, dtype=dtype)
        masked_image = masked_image.to(device=device, dtype=dtype)
        if masked_image.shape[1] == self.vae.config.latent_channels:
            masked_image_latents = masked_image
        else:
            masked_image_latents = self._encode_vae_image(masked_image, generator)
        if tuple(masked_image_latents.shape[2:]) != size:
            raise ValueError(
                f"masked_image_latents are {tuple(masked_image_latents.shape[2:])} (height, width) but the latents of "
                f"a {height}x{width} image are {size}: pass latents of the image at the size you generate."
            )
        mask = repeat_to_batch(mask, batch_size, "masks")
        masked_image_latents = repeat_to_batch(masked_image_latents, batch_size, "images")
        if do_classifier_free_guidance:
            mask, masked_image_latents = torch.cat([mask] * 2), torch.cat([masked_image_latents] * 2)
        return mask, masked_image_latents

    def _preprocess(self, image: Any, mask_image: Any, height: int, width: int, padding_mask_crop: int | None
                    ) -> tuple[torch.Tensor, torch.Tensor, tuple[int, int, int, int] | None]:
        """(image in [-1, 1], mask in {0, 1}, crop box or None), both at height x width."""
        crop = None
        if padding_mask_crop is not None:
            crop = get_crop_region(mask_image, width, height, pad=padding_mask_crop)
            resample = PIL_RESAMPLE[self.image_processor.config.resample]
            image = resize_and_fill(image.crop(crop), width, height, resample)
            mask_image = resize_and_fill(mask_image.crop(crop), width, height, resample)
        init_image = self.image_processor.preprocess(image, height=height, width=width).to(dtype=torch.float32)
        check_image_channels(init_image, self.vae)
        mask = self.mask_processor.preprocess(mask_image, height=height, width=width)
        if mask.shape[1] != 1:
            raise ValueError(
                f"mask_image has {mask.shape[1]} channels; a mask has one (white = repaint): a grey or RGB PIL image, "
                "a numpy (batch, height, width[, 1]) array or a torch (batch, 1, height, width) tensor."
            )
        if init_image.shape[0] != mask.shape[0] and 1 not in (init_image.shape[0], mask.shape[0]):
            raise ValueError(f"Got {init_image.shape[0]} images and {mask.shape[0]} masks: pass one mask per image, "
                             "or one mask for all of them.")
        return init_image, mask, crop

    # --- the pipeline --------------------------------------------------------------------------
    @torch.no_grad()  # torch re-enters it at every resumption of the generator
    def stream(
        self,
        prompt: str | list[str] | None = None,
        image: Any = None,
        mask_image: Any = None,
        masked_image_latents: torch.Tensor | None = None,
        height: int | None = None,
        width: int | None = None,
        padding_mask_crop: int | None = None,
        strength: float = 1.0,
        num_inference_steps: int = 50,
        timesteps: list[int] | None = None,
        sigmas: list[float] | None = None,
        guidance_scale: float = 7.5,
        negative_prompt: str | list[str] | None = None,
        num_images_per_prompt: int = 1,
        eta: float = 0.0,
        generator: Any = None,
        latents: torch.Tensor | None = None,
        prompt_embeds: torch.Tensor | None = None,
        negative_prompt_embeds: torch.Tensor | None = None,
        output_type: str = "pil",
        cross_attention_kwargs: dict[str, Any] | None = None,
        clip_skip: int | None = None,
        callback_on_step_end: Callable | None = None,
        callback_on_step_end_tensor_inputs: list[str] | None = None,
    ) -> Iterator[DenoisingStep]:
        """Inpaint step by step: yields a DenoisingStep per step; the last one has ``output``."""
        height, width = self._default_size(height, width)
        callback_inputs = list(callback_on_step_end_tensor_inputs or ["latents"])
        self.check_inputs(prompt, image, mask_image, height, width, strength, output_type, negative_prompt,
                          prompt_embeds, negative_prompt_embeds, callback_inputs, padding_mask_crop)
        check_num_images(num_images_per_prompt)
        init_image, mask_condition, crop = self._preprocess(image, mask_image, height, width, padding_mask_crop)
        if init_image.shape[1] != self.vae.config.in_channels and masked_image_latents is None:
            raise ValueError("image is given as latents, so the masked image cannot be made from it: pass the image "
                             "as pixels, or pass masked_image_latents too.")
        batch_size = _batch_size(prompt, prompt_embeds)
        device = self._execution_device
        guided = guidance_scale > 1 and self.unet.config.get("time_cond_proj_dim") is None
        plain_unet = self.unet.config.in_channels == 4
        try:
            prompt_embeds, negative_prompt_embeds = self.encode_prompt(
                prompt, device, num_images_per_prompt, guided, negative_prompt, prompt_embeds=prompt_embeds,
                negative_prompt_embeds=negative_prompt_embeds, clip_skip=clip_skip,
            )
            timesteps, steps = retrieve_timesteps(self.scheduler, num_inference_steps, device, timesteps, sigmas)
            timesteps, steps = self.get_timesteps(steps, strength, device)
            check_steps_left(steps, strength, num_inference_steps)
            total = batch_size * num_images_per_prompt
            dtype = prompt_embeds.dtype
            channels = self.vae.config.latent_channels
            prepared = self.prepare_latents(
                total, channels, height, width, dtype, device, generator, latents, image=init_image,
                timestep=timesteps[:1].repeat(total), is_strength_max=strength == 1.0, return_noise=True,
                return_image_latents=plain_unet,
            )
            latents, noise = prepared[0], prepared[1]
            image_latents = prepared[2] if plain_unet else None
            # diffusers encodes the masked image even for a 4-channel UNet; so does hugkit, to draw the same noise.
            masked_image = init_image * (mask_condition < 0.5) if masked_image_latents is None else masked_image_latents
            mask, masked_image_latents = self.prepare_mask_latents(
                mask_condition, masked_image, total, height, width, dtype, device, generator, False
            )
            if not plain_unet and channels + mask.shape[1] + masked_image_latents.shape[1] != self.unet.config.in_channels:
                raise ValueError(
                    f"The UNet takes {self.unet.config.in_channels} input channels, but latents ({channels}) + mask "
                    f"({mask.shape[1]}) + masked image latents ({masked_image_latents.shape[1]}) make "
                    f"{channels + mask.shape[1] + masked_image_latents.shape[1]}."
                )
            embeds = {"prompt_embeds": prompt_embeds, "negative_prompt_embeds": negative_prompt_embeds if guided else None,
                      "mask": mask, "masked_image_latents": masked_image_latents}

            def add_mask_channels(latent_input: torch.Tensor, t: Any) -> torch.Tensor:
                extra = torch.cat([embeds["mask"], embeds["masked_image_latents"]], dim=1)
                return torch.cat([latent_input, torch.cat([extra] * 2) if guided else extra], dim=1)

            def keep_unmasked(step_latents: torch.Tensor, i: int, t: Any) -> torch.Tensor:
                original = image_latents
                if i < len(timesteps) - 1:  # the original at the next step's noise level
                    original = self.scheduler.add_noise(image_latents, noise, timesteps[i + 1 : i + 2])
                return (1 - embeds["mask"]) * original + embeds["mask"] * step_latents

            unet_kwargs = {"cross_attention_kwargs": cross_attention_kwargs,
                           "timestep_cond": self._timestep_cond(guidance_scale, total, device, latents.dtype)}
            def decode(final: torch.Tensor) -> Any:
                output = self._decode(final, output_type, device, dtype)
                if crop is not None:
                    resample = PIL_RESAMPLE[self.image_processor.config.resample]
                    output.images = [apply_overlay(mask_image, image, one, crop, resample) for one in output.images]
                return output

            yield from self._denoising_loop(
                latents, timesteps, steps, embeds, guidance_scale, 0.0, unet_kwargs,
                step_kwargs(self.scheduler, generator, eta), callback_on_step_end, callback_inputs, decode=decode,
                model_input=None if plain_unet else add_mask_channels,
                after_step=keep_unmasked if plain_unet else None,
            )
        finally:
            self.maybe_free_model_hooks()


# --- padding_mask_crop: the masked region, cropped, resized and pasted back (PIL only, as in diffusers) ----------
def get_crop_region(mask_image: Any, width: int, height: int, pad: int = 0) -> tuple[int, int, int, int]:
    """(x1, y1, x2, y2): the box around the mask's non-zero pixels, ``pad`` pixels wider on each side, then
    grown to the aspect ratio of width x height (kept inside the image)."""
    mask = np.array(mask_image.convert("L"))
    rows, cols = np.nonzero(mask.any(axis=1))[0], np.nonzero(mask.any(axis=0))[0]
    image_h, image_w = mask.shape
    if rows.size == 0:  # an empty mask: the whole image
        x1, y1, x2, y2 = 0, 0, image_w, image_h
    else:
        x1, y1 = max(int(cols[0]) - pad, 0), max(int(rows[0]) - pad, 0)
        x2, y2 = min(int(cols[-1]) + 1 + pad, image_w), min(int(rows[-1]) + 1 + pad, image_h)
    target_ratio = width / height
    if (x2 - x1) / (y2 - y1) > target_ratio:  # too wide: grow the height
        y1, y2 = _grow(y1, y2, int((x2 - x1) / target_ratio - (y2 - y1)), image_h)
    else:
        x1, x2 = _grow(x1, x2, int((y2 - y1) * target_ratio - (x2 - x1)), image_w)
    return x1, y1, x2, y2


def _grow(start: int, end: int, extra: int, limit: int) -> tuple[int, int]:
    """Widen [start, end) by ``extra`` (half on each side), shifted back inside [0, limit)."""
    start, end = start - extra // 2, end + extra - extra // 2
    if end >= limit:
        start, end = start - (end - limit), limit
    if start < 0:
        start, end = 0, end - start
    return start, min(end, limit)


def resize_and_fill(image: Any, width: int, height: int, resample: int) -> Any:
    """Fit the image inside width x height keeping its aspect ratio, centred; the empty bands are filled by
    stretching the image's edge rows (or columns) over them."""
    from PIL import Image

    ratio, source_ratio = width / height, image.width / image.height
    fit_w = width if ratio < source_ratio else image.width * height // image.height
    fit_h = height if ratio >= source_ratio else image.height * width // image.width
    resized = image.resize((fit_w, fit_h), resample=resample)
    result = Image.new("RGB", (width, height))
    result.paste(resized, box=(width // 2 - fit_w // 2, height // 2 - fit_h // 2))
    if ratio < source_ratio:
        band = height // 2 - fit_h // 2
        if band > 0:
            result.paste(resized.resize((width, band), box=(0, 0, width, 0)), box=(0, 0))
            result.paste(resized.resize((width, band), box=(0, resized.height, width, resized.height)), box=(0, band + fit_h))
    elif ratio > source_ratio:
        band = width // 2 - fit_w // 2
        if band > 0:
            result.paste(resized.resize((band, height), box=(0, 0, 0, height)), box=(0, 0))
            result.paste(resized.resize((band, height), box=(resized.width, 0, resized.width, height)), box=(band + fit_w, 0))
    return result


def resize_and_crop(image: Any, width: int, height: int, resample: int) -> Any:
    """Cover width x height keeping the aspect ratio, centred; what sticks out is cut off."""
    from PIL import Image

    ratio, source_ratio = width / height, image.width / image.height
    cover_w = width if ratio > source_ratio else image.width * height // image.height
    cover_h = height if ratio <= source_ratio else image.height * width // image.width
    result = Image.new("RGB", (width, height))
    result.paste(image.resize((cover_w, cover_h), resample=resample), box=(width // 2 - cover_w // 2, height // 2 - cover_h // 2))
    return result


def apply_overlay(mask: Any, original: Any, image: Any, crop: tuple[int, int, int, int], resample: int) -> Any:
    """Paste the generated crop back into the original image's box; outside the mask the original shows."""
    from PIL import Image, ImageOps

    width, height = original.size
    kept = Image.new("RGBa", (width, height))
    kept.paste(original.convert("RGBA").convert("RGBa"), mask=ImageOps.invert(mask.convert("L")))
    x1, y1, x2, y2 = crop
    canvas = Image.new("RGBA", (width, height))
    canvas.paste(resize_and_crop(image, x2 - x1, y2 - y1, resample), (x1, y1))
    result = canvas.convert("RGB").convert("RGBA")
    result.alpha_composite(kept.convert("RGBA"))
    return result.convert("RGB")
