"""StableDiffusionImg2ImgPipeline: image-to-image with SD 1.x / 2.x checkpoints, as diffusers computes it.

The input image is encoded by the VAE and noised to the timestep ``strength`` picks, then denoised over the last
``strength`` share of the schedule: 1.0 starts from (almost) pure noise and keeps only the image's size, 0.3
retouches it lightly. The prompt encoding, the loop and the decoding are StableDiffusionPipeline's.

This file also holds the image-to-latents helpers the inpainting and SDXL image-to-image pipelines share:
``retrieve_latents``, ``encode_vae_image``, ``repeat_to_batch``, ``get_timesteps`` and the input checks.
"""

from __future__ import annotations

from typing import Any, Callable, Iterator

import torch

from ..denoising import DenoisingStep, check_callback_inputs, retrieve_timesteps, step_kwargs
from ..image_processor import is_pil_image
from ..utils import randn_tensor
from .stable_diffusion import StableDiffusionPipeline, _batch_size, check_generators, check_num_images, check_prompts

SAMPLE_MODES = ("sample", "argmax")


# --- helpers shared by the image-conditioned pipelines ----------------------------------------------
def retrieve_latents(encoder_output: Any, generator: Any = None, sample_mode: str = "sample") -> torch.Tensor:
    """Latents from a VAE's ``encode()`` output: a draw from its ``latent_dist`` seeded by ``generator``
    ("sample"), the distribution's mode ("argmax"), or ``latents`` for encoders that return them directly."""
    if sample_mode not in SAMPLE_MODES:
        raise ValueError(f"sample_mode must be one of {SAMPLE_MODES}, got {sample_mode!r}.")
    distribution = getattr(encoder_output, "latent_dist", None)
    if distribution is not None:
        return distribution.sample(generator) if sample_mode == "sample" else distribution.mode()
    latents = getattr(encoder_output, "latents", None)
    if latents is not None:
        return latents
    raise TypeError(
        f"The VAE's encode() returned {type(encoder_output).__name__}, which has neither `latent_dist` nor "
        "`latents`; image-to-image needs a VAE such as AutoencoderKL."
    )


def encode_vae_image(vae: Any, image: torch.Tensor, generator: Any, sample_mode: str = "sample") -> torch.Tensor:
    """Unscaled VAE latents of images in [-1, 1]. A list of generators seeds one image each (row i draws from
    generator i), so every image of a batch is reproducible on its own, as in diffusers."""
    if isinstance(generator, list):
        rows = [retrieve_latents(vae.encode(image[i : i + 1]), generator[i], sample_mode) for i in range(image.shape[0])]
        return torch.cat(rows, dim=0)
    return retrieve_latents(vae.encode(image), generator, sample_mode)


def repeat_to_batch(tensor: torch.Tensor, batch_size: int, what: str) -> torch.Tensor:
    """Tile a batch of n images (or masks) up to ``batch_size`` = prompts x num_images_per_prompt, n dividing it.
    Tiling, not interleaving: with two prompts and one image, both prompts start from that image."""
    count = tensor.shape[0]
    if count == batch_size:
        return tensor
    if count > batch_size or batch_size % count:
        raise ValueError(
            f"Got {count} {what} for a batch of {batch_size} images (prompts x num_images_per_prompt). Pass one, "
            f"one per prompt, or a number of {what} that divides the batch."
        )
    return tensor.repeat(batch_size // count, *([1] * (tensor.ndim - 1)))


def get_timesteps(scheduler: Any, num_inference_steps: int, strength: float) -> tuple[torch.Tensor, int]:
    """The tail of the schedule that ``strength`` keeps: int(steps x strength) steps, the scheduler told where
    it starts (``set_begin_index``) so noise levels and multistep histories line up."""
    init_steps = min(int(num_inference_steps * strength), num_inference_steps)
    start = max(num_inference_steps - init_steps, 0)
    order = getattr(scheduler, "order", 1)
    timesteps = scheduler.timesteps[start * order :]
    if hasattr(scheduler, "set_begin_index"):
        scheduler.set_begin_index(start * order)
    return timesteps, num_inference_steps - start


def check_strength(strength: Any) -> None:
    if isinstance(strength, bool) or not isinstance(strength, (int, float)) or not 0 <= strength <= 1:
        raise ValueError(
            f"strength must be a number in [0, 1] (how much of the schedule to run on the image), got {strength!r}."
        )


def check_steps_left(steps: int, strength: float, num_inference_steps: int) -> None:
    if steps < 1:
        raise ValueError(
            f"strength={strength} with num_inference_steps={num_inference_steps} leaves no denoising step "
            f"(int(steps x strength) = 0). Raise strength or num_inference_steps."
        )


def check_image_input(image: Any, name: str = "image") -> None:
    """Images must be given, and PIL images must be RGB: diffusers would read a 4-channel RGBA image as latents
    and fail deep inside the VAE on a 1-channel one."""
    if image is None:
        raise ValueError(f"{name} is required: pass a PIL image, a numpy array or a torch tensor (or a list of them).")
    for item in image if isinstance(image, (list, tuple)) else [image]:
        if is_pil_image(item) and item.mode != "RGB":
            raise ValueError(
                f"{name} is a PIL image in mode {item.mode!r}; an RGB image is expected. Convert it with "
                f"{name}.convert('RGB')."
            )


def check_image_channels(image: torch.Tensor, vae: Any, name: str = "image") -> None:
    """A preprocessed image has the VAE's input channels (pixels) or its latent channels (latents, used as is)."""
    allowed = (vae.config.in_channels, vae.config.latent_channels)
    if image.shape[1] not in allowed:
        raise ValueError(
            f"{name} has {image.shape[1]} channels; expected {allowed[0]} (an RGB image: numpy (batch, height, width, "
            f"3), torch (batch, 3, height, width)) or {allowed[1]} (latents from the VAE)."
        )


class StableDiffusionImg2ImgPipeline(StableDiffusionPipeline):
    """Image-to-image: the components and arguments of diffusers' pipeline of the same name."""

    def check_inputs(
        self,
        prompt: Any,
        strength: float,
        negative_prompt: Any = None,
        prompt_embeds: torch.Tensor | None = None,
        negative_prompt_embeds: torch.Tensor | None = None,
        callback_on_step_end_tensor_inputs: Any = None,
    ) -> None:
        check_strength(strength)
        check_callback_inputs(callback_on_step_end_tensor_inputs, self._callback_tensor_inputs)
        check_prompts(prompt, prompt_embeds, negative_prompt, negative_prompt_embeds)

    def get_timesteps(self, num_inference_steps: int, strength: float, device: Any = None) -> tuple[torch.Tensor, int]:
        return get_timesteps(self.scheduler, num_inference_steps, strength)

    def prepare_latents(
        self, image: torch.Tensor, timestep: torch.Tensor, batch_size: int, num_images_per_prompt: int,
        dtype: torch.dtype, device: torch.device, generator: Any = None,
    ) -> torch.Tensor:
        """The image's latents (encoded unless already latents), tiled to the batch and noised to ``timestep``."""
        total = batch_size * num_images_per_prompt
        image = image.to(device=device, dtype=dtype)
        check_generators(generator, total)
        if image.shape[1] == self.vae.config.latent_channels:
            init_latents = image
        else:
            if isinstance(generator, list):  # one generator per output image: encode each copy with its own
                image = repeat_to_batch(image, total, "images")
            init_latents = self.vae.config.scaling_factor * encode_vae_image(self.vae, image, generator)
        init_latents = repeat_to_batch(init_latents, total, "images")
        noise = randn_tensor(init_latents.shape, generator=generator, device=device, dtype=dtype)
        return self.scheduler.add_noise(init_latents, noise, timestep)

    def _preprocess_image(self, image: Any) -> torch.Tensor:
        check_image_input(image)
        tensor = self.image_processor.preprocess(image)
        check_image_channels(tensor, self.vae)
        return tensor

    @torch.no_grad()  # torch re-enters it at every resumption of the generator
    def stream(
        self,
        prompt: str | list[str] | None = None,
        image: Any = None,
        strength: float = 0.8,
        num_inference_steps: int = 50,
        timesteps: list[int] | None = None,
        sigmas: list[float] | None = None,
        guidance_scale: float = 7.5,
        negative_prompt: str | list[str] | None = None,
        num_images_per_prompt: int = 1,
        eta: float = 0.0,
        generator: Any = None,
        prompt_embeds: torch.Tensor | None = None,
        negative_prompt_embeds: torch.Tensor | None = None,
        output_type: str = "pil",
        cross_attention_kwargs: dict[str, Any] | None = None,
        clip_skip: int | None = None,
        callback_on_step_end: Callable | None = None,
        callback_on_step_end_tensor_inputs: list[str] | None = None,
    ) -> Iterator[DenoisingStep]:
        """Transform ``image`` step by step: yields a DenoisingStep per step; the last one has ``output``."""
        callback_inputs = list(callback_on_step_end_tensor_inputs or ["latents"])
        self.check_inputs(prompt, strength, negative_prompt, prompt_embeds, negative_prompt_embeds, callback_inputs)
        check_num_images(num_images_per_prompt)
        image = self._preprocess_image(image)
        batch_size = _batch_size(prompt, prompt_embeds)
        device = self._execution_device
        guided = guidance_scale > 1 and self.unet.config.get("time_cond_proj_dim") is None
        try:
            prompt_embeds, negative_prompt_embeds = self.encode_prompt(
                prompt, device, num_images_per_prompt, guided, negative_prompt, prompt_embeds=prompt_embeds,
                negative_prompt_embeds=negative_prompt_embeds, clip_skip=clip_skip,
            )
            timesteps, steps = retrieve_timesteps(self.scheduler, num_inference_steps, device, timesteps, sigmas)
            timesteps, steps = self.get_timesteps(steps, strength, device)
            check_steps_left(steps, strength, num_inference_steps)
            total = batch_size * num_images_per_prompt
            latents = self.prepare_latents(image, timesteps[:1].repeat(total), batch_size, num_images_per_prompt,
                                           prompt_embeds.dtype, device, generator)
            unet_kwargs = {"cross_attention_kwargs": cross_attention_kwargs,
                           "timestep_cond": self._timestep_cond(guidance_scale, total, device, latents.dtype)}
            embeds = {"prompt_embeds": prompt_embeds, "negative_prompt_embeds": negative_prompt_embeds if guided else None}
            yield from self._denoising_loop(
                latents, timesteps, steps, embeds, guidance_scale, 0.0, unet_kwargs,
                step_kwargs(self.scheduler, generator, eta), callback_on_step_end, callback_inputs,
                decode=lambda final: self._decode(final, output_type, device, prompt_embeds.dtype),
            )
        finally:
            self.maybe_free_model_hooks()
