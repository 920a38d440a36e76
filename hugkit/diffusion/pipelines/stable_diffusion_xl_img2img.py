"""StableDiffusionXLImg2ImgPipeline: SDXL image-to-image and the SDXL refiner, as diffusers computes it.

Image-to-image as in SD (``strength`` picks how much of the schedule runs on the encoded image) with SDXL's
conditioning. The refiner checkpoint has only the second text encoder and conditions on an aesthetic score instead
of the target size (``requires_aesthetics_score``); it finishes what a base pipeline started: the base runs with
``denoising_end=0.8, output_type="latent"`` and the refiner takes those latents as ``image`` with
``denoising_start=0.8`` (no extra noise is added then).
"""

from __future__ import annotations

from typing import Any, Callable, Iterator, Sequence

import torch

from ..denoising import DenoisingStep, check_callback_inputs, retrieve_timesteps, step_kwargs
from ..utils import randn_tensor
from .stable_diffusion import _batch_size, check_generators, check_num_images
from .stable_diffusion_img2img import (
    check_image_channels,
    check_image_input,
    check_steps_left,
    check_strength,
    encode_vae_image,
    get_timesteps,
    repeat_to_batch,
)
from .stable_diffusion_xl import (
    StableDiffusionXLPipeline,
    _pair,
    check_add_embed_dim,
    check_sdxl_prompts,
    cut_at_denoising_end,
    denoising_fraction,
    scale_latents,
)


class StableDiffusionXLImg2ImgPipeline(StableDiffusionXLPipeline):
    """SDXL image-to-image / refiner: the components and arguments of diffusers' pipeline of the same name."""

    def __init__(
        self,
        vae: Any,
        text_encoder: Any,
        text_encoder_2: Any,
        tokenizer: Any,
        tokenizer_2: Any,
        unet: Any,
        scheduler: Any,
        image_encoder: Any = None,
        feature_extractor: Any = None,
        requires_aesthetics_score: bool = False,
        force_zeros_for_empty_prompt: bool = True,
        add_watermarker: bool | None = None,
    ) -> None:
        super().__init__(vae, text_encoder, text_encoder_2, tokenizer, tokenizer_2, unet, scheduler, image_encoder,
                         feature_extractor, force_zeros_for_empty_prompt, add_watermarker)
        self.register_to_config(requires_aesthetics_score=requires_aesthetics_score)

    # --- schedule ------------------------------------------------------------------------------
    def get_timesteps(self, num_inference_steps: int, strength: float, device: Any = None,
                      denoising_start: float | None = None) -> tuple[torch.Tensor, int]:
        """The part of the schedule to run: the last ``strength`` share, or everything below the
        ``denoising_start`` point of the training schedule (then strength is ignored)."""
        if denoising_start is None:
            return get_timesteps(self.scheduler, num_inference_steps, strength)
        train_steps = self.scheduler.config.num_train_timesteps
        cutoff = int(round(train_steps - denoising_start * train_steps))
        steps = int((self.scheduler.timesteps < cutoff).sum().item())
        if self.scheduler.order == 2 and steps % 2 == 0:
            steps += 1  # second-order schedulers: do not stop between a step's two evaluations
        start = len(self.scheduler.timesteps) - steps
        if hasattr(self.scheduler, "set_begin_index"):
            self.scheduler.set_begin_index(start)
        return self.scheduler.timesteps[start:], steps

    # --- latents -------------------------------------------------------------------------------
    def prepare_latents(
        self, image: torch.Tensor, timestep: torch.Tensor, batch_size: int, num_images_per_prompt: int,
        dtype: torch.dtype, device: torch.device, generator: Any = None, add_noise: bool = True,
    ) -> torch.Tensor:
        """The image's latents (encoded unless already latents, in float32 when the VAE says ``force_upcast``),
        tiled to the batch and, unless continuing a base pipeline's run, noised to ``timestep``."""
        total = batch_size * num_images_per_prompt
        image = image.to(device=device, dtype=dtype)
        check_generators(generator, total)
        if image.shape[1] == self.vae.config.latent_channels:
            init_latents = image
        else:
            vae_dtype = self.vae.dtype
            upcast = bool(self.vae.config.get("force_upcast", False)) and vae_dtype != torch.float32
            if isinstance(generator, list):  # one generator per output image: encode each copy with its own
                image = repeat_to_batch(image, total, "images")
            if upcast:
                image = image.float()
                self.vae.to(dtype=torch.float32)
            try:
                encoded = encode_vae_image(self.vae, image, generator)
            finally:
                if upcast:
                    self.vae.to(dtype=vae_dtype)
            init_latents = scale_latents(self.vae, encoded.to(dtype))
        init_latents = repeat_to_batch(init_latents, total, "images")
        if not add_noise:
            return init_latents
        noise = randn_tensor(init_latents.shape, generator=generator, device=device, dtype=dtype)
        return self.scheduler.add_noise(init_latents, noise, timestep)

    # --- micro-conditioning ----------------------------------------------------------------------
    def _get_add_time_ids(
        self,
        original_size: Sequence[int],
        crops_coords_top_left: Sequence[int],
        target_size: Sequence[int],
        aesthetic_score: float,
        negative_aesthetic_score: float,
        negative_original_size: Sequence[int],
        negative_crops_coords_top_left: Sequence[int],
        negative_target_size: Sequence[int],
        dtype: torch.dtype,
        text_encoder_projection_dim: int | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(positive, negative) time ids, (1, 6) each, or (1, 5) with an aesthetic score in place of the target
        size (refiners). The negative crop corner is the positive one, as in diffusers."""
        original, crops = _pair(original_size, "original_size"), _pair(crops_coords_top_left, "crops_coords_top_left")
        negative_original = _pair(negative_original_size, "negative_original_size")
        if self.config.requires_aesthetics_score:
            positive = [*original, *crops, aesthetic_score]
            negative = [*negative_original, *_pair(negative_crops_coords_top_left, "negative_crops_coords_top_left"),
                        negative_aesthetic_score]
        else:
            positive = [*original, *crops, *_pair(target_size, "target_size")]
            negative = [*negative_original, *crops, *_pair(negative_target_size, "negative_target_size")]
        check_add_embed_dim(self.unet, len(positive), text_encoder_projection_dim)
        return torch.tensor([positive], dtype=dtype), torch.tensor([negative], dtype=dtype)

    # --- the pipeline --------------------------------------------------------------------------
    @torch.no_grad()  # torch re-enters it at every resumption of the generator
    def stream(
        self,
        prompt: str | list[str] | None = None,
        prompt_2: str | list[str] | None = None,
        image: Any = None,
        strength: float = 0.3,
        num_inference_steps: int = 50,
        timesteps: list[int] | None = None,
        sigmas: list[float] | None = None,
        denoising_start: float | None = None,
        denoising_end: float | None = None,
        guidance_scale: float = 5.0,
        negative_prompt: str | list[str] | None = None,
        negative_prompt_2: str | list[str] | None = None,
        num_images_per_prompt: int = 1,
        eta: float = 0.0,
        generator: Any = None,
        latents: torch.Tensor | None = None,
        prompt_embeds: torch.Tensor | None = None,
        negative_prompt_embeds: torch.Tensor | None = None,
        pooled_prompt_embeds: torch.Tensor | None = None,
        negative_pooled_prompt_embeds: torch.Tensor | None = None,
        output_type: str = "pil",
        cross_attention_kwargs: dict[str, Any] | None = None,
        guidance_rescale: float = 0.0,
        original_size: tuple[int, int] | None = None,
        crops_coords_top_left: tuple[int, int] = (0, 0),
        target_size: tuple[int, int] | None = None,
        negative_original_size: tuple[int, int] | None = None,
        negative_crops_coords_top_left: tuple[int, int] = (0, 0),
        negative_target_size: tuple[int, int] | None = None,
        aesthetic_score: float = 6.0,
        negative_aesthetic_score: float = 2.5,
        clip_skip: int | None = None,
        callback_on_step_end: Callable | None = None,
        callback_on_step_end_tensor_inputs: list[str] | None = None,
    ) -> Iterator[DenoisingStep]:
        """Transform ``image`` step by step: yields a DenoisingStep per step; the last one has ``output``."""
        callback_inputs = list(callback_on_step_end_tensor_inputs or ["latents"])
        check_strength(strength)
        denoising_start = denoising_fraction(denoising_start, "denoising_start")
        denoising_end = denoising_fraction(denoising_end, "denoising_end")
        if denoising_start is not None and denoising_end is not None and denoising_start >= denoising_end:
            raise ValueError(f"denoising_start ({denoising_start}) must be below denoising_end ({denoising_end}).")
        check_callback_inputs(callback_inputs, self._callback_tensor_inputs)
        check_sdxl_prompts(prompt, prompt_2, negative_prompt, negative_prompt_2, prompt_embeds, negative_prompt_embeds,
                           pooled_prompt_embeds, negative_pooled_prompt_embeds)
        check_num_images(num_images_per_prompt)
        check_image_input(image)
        image = self.image_processor.preprocess(image)
        check_image_channels(image, self.vae)
        batch_size = _batch_size(prompt, prompt_embeds)
        device = self._execution_device
        guided = guidance_scale > 1 and self.unet.config.get("time_cond_proj_dim") is None
        try:
            prompt_embeds, negative_prompt_embeds, pooled, negative_pooled = self.encode_prompt(
                prompt, prompt_2, device, num_images_per_prompt, guided, negative_prompt, negative_prompt_2,
                prompt_embeds, negative_prompt_embeds, pooled_prompt_embeds, negative_pooled_prompt_embeds,
                clip_skip=clip_skip,
            )
            timesteps, steps = retrieve_timesteps(self.scheduler, num_inference_steps, device, timesteps, sigmas)
            timesteps, steps = self.get_timesteps(steps, strength, device, denoising_start)
            check_steps_left(steps, strength, num_inference_steps)
            total = batch_size * num_images_per_prompt
            if latents is None:
                latents = self.prepare_latents(image, timesteps[:1].repeat(total), batch_size, num_images_per_prompt,
                                               prompt_embeds.dtype, device, generator, add_noise=denoising_start is None)
            else:
                latents = latents.to(device)
            height, width = latents.shape[-2] * self.vae_scale_factor, latents.shape[-1] * self.vae_scale_factor
            original_size = original_size or (height, width)
            target_size = target_size or (height, width)
            add_time_ids, add_neg_time_ids = self._get_add_time_ids(
                original_size, crops_coords_top_left, target_size, aesthetic_score, negative_aesthetic_score,
                negative_original_size or original_size, negative_crops_coords_top_left,
                negative_target_size or target_size, pooled.dtype, self._projection_dim(pooled),
            )
            timesteps, steps = cut_at_denoising_end(self.scheduler, timesteps, steps, denoising_end)
            embeds = {
                "prompt_embeds": prompt_embeds, "negative_prompt_embeds": negative_prompt_embeds if guided else None,
                "add_text_embeds": pooled, "negative_pooled_prompt_embeds": negative_pooled,
                "add_time_ids": add_time_ids.to(device).repeat(total, 1),
                "add_neg_time_ids": add_neg_time_ids.to(device).repeat(total, 1),
            }
            unet_kwargs = {"cross_attention_kwargs": cross_attention_kwargs,
                           "timestep_cond": self._timestep_cond(guidance_scale, total, device, latents.dtype)}
            yield from self._denoising_loop(
                latents, timesteps, steps, embeds, guidance_scale, guidance_rescale, unet_kwargs,
                step_kwargs(self.scheduler, generator, eta), callback_on_step_end, callback_inputs,
                decode=lambda final: self._decode(final, output_type, device, prompt_embeds.dtype),
            )
        finally:
            self.maybe_free_model_hooks()
