"""StableDiffusionXLPipeline: text to image with SDXL checkpoints, as diffusers computes it.

What SDXL adds to SD's loop: two text encoders whose penultimate hidden states are concatenated (the second,
with a projection, also gives a pooled embedding), and "micro-conditioning": the UNet gets the pooled embedding
and six size numbers (original size, crop corner, target size) as ``added_cond_kwargs``. An empty negative prompt
becomes all-zero embeddings when the checkpoint says ``force_zeros_for_empty_prompt``. ``denoising_end`` stops
early to hand the latents to a refiner (StableDiffusionXLImg2ImgPipeline with ``denoising_start``).
The VAE runs in float32 when it is float16 and its config says ``force_upcast`` (SDXL's VAE overflows in fp16).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Iterator, Sequence

import torch

from ...outputs import ModelOutput
from ..denoising import DenoisingStep, check_callback_inputs, retrieve_timesteps, step_kwargs
from ..image_processor import VaeImageProcessor
from .stable_diffusion import (
    StableDiffusionPipeline,
    _as_list,
    _batch_size,
    _repeat,
    check_num_images,
    check_prompts,
    fix_outdated_scheduler_config,
    warn_if_truncated,
)


@dataclass
class StableDiffusionXLPipelineOutput(ModelOutput):
    images: Any = None


class StableDiffusionXLPipeline(StableDiffusionPipeline):
    """SDXL text-to-image: the components and arguments of diffusers' pipeline of the same name."""

    _optional_components = ["tokenizer", "tokenizer_2", "text_encoder", "text_encoder_2", "image_encoder",
                            "feature_extractor"]
    model_cpu_offload_seq = "text_encoder->text_encoder_2->image_encoder->unet->vae"
    # hugkit keeps the positive and negative halves apart (the loop stacks them), so a callback sees both.
    _callback_tensor_inputs = ["latents", "prompt_embeds", "negative_prompt_embeds", "add_text_embeds",
                               "negative_pooled_prompt_embeds", "add_time_ids", "add_neg_time_ids"]
    latent_format = "sdxl"

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
        force_zeros_for_empty_prompt: bool = True,
        add_watermarker: bool | None = None,
    ) -> None:
        if add_watermarker:
            raise ValueError(
                "hugkit does not apply SDXL's invisible watermark (diffusers does it with the invisible-watermark "
                "package). Pass add_watermarker=False or leave it unset."
            )
        fix_outdated_scheduler_config(scheduler)
        self.register_modules(
            vae=vae, text_encoder=text_encoder, text_encoder_2=text_encoder_2, tokenizer=tokenizer,
            tokenizer_2=tokenizer_2, unet=unet, scheduler=scheduler, image_encoder=image_encoder,
            feature_extractor=feature_extractor,
        )
        self.register_to_config(force_zeros_for_empty_prompt=force_zeros_for_empty_prompt)
        self.vae_scale_factor = 2 ** (len(vae.config.block_out_channels) - 1) if vae is not None else 8
        self.image_processor = VaeImageProcessor(vae_scale_factor=self.vae_scale_factor)
        self.default_sample_size = unet.config.sample_size if unet is not None else 128
        self.watermark = None

    # --- prompt --------------------------------------------------------------------------------
    def _encoders(self) -> list[tuple[Any, Any]]:
        """(tokenizer, text encoder) pairs in use; a refiner has only the second."""
        pairs = [(self.tokenizer, self.text_encoder), (self.tokenizer_2, self.text_encoder_2)]
        pairs = [(tok, enc) for tok, enc in pairs if enc is not None]
        if not pairs:
            raise ValueError("This pipeline has no text encoder: pass prompt_embeds and pooled_prompt_embeds instead of a prompt.")
        return pairs

    def _encode_texts(self, texts: list[list[str]], device: torch.device, max_length: int | None, layer: int,
                      warn: bool, pooled: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Concatenated hidden states (``layer`` from the end) of each encoder for its texts, and the pooled
        embedding of the first encoder that has a projection (unless one was given)."""
        states = []
        for (tokenizer, encoder), batch in zip(self._encoders(), texts):
            length = max_length or tokenizer.model_max_length
            ids = tokenizer(batch, padding="max_length", max_length=length, truncation=True, return_tensors="pt")["input_ids"]
            if warn:
                warn_if_truncated(tokenizer, batch, ids)
            out = encoder(ids.to(device), output_hidden_states=True)
            if pooled is None and out[0].ndim == 2:  # text_embeds of CLIPTextModelWithProjection
                pooled = out[0]
            states.append(out.hidden_states[layer])
        return torch.cat(states, dim=-1), pooled

    def encode_prompt(
        self,
        prompt: str | list[str] | None,
        prompt_2: str | list[str] | None = None,
        device: torch.device | None = None,
        num_images_per_prompt: int = 1,
        do_classifier_free_guidance: bool = True,
        negative_prompt: str | list[str] | None = None,
        negative_prompt_2: str | list[str] | None = None,
        prompt_embeds: torch.Tensor | None = None,
        negative_prompt_embeds: torch.Tensor | None = None,
        pooled_prompt_embeds: torch.Tensor | None = None,
        negative_pooled_prompt_embeds: torch.Tensor | None = None,
        lora_scale: float | None = None,
        clip_skip: int | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor, torch.Tensor | None]:
        """(prompt embeds, negative embeds, pooled, negative pooled), each repeated ``num_images_per_prompt``
        times. ``prompt_2`` goes to the second encoder (default: ``prompt``); SDXL reads the penultimate layer,
        ``clip_skip=k`` k layers before it."""
        device = device or self._execution_device
        batch_size = _batch_size(prompt, prompt_embeds)
        if prompt_embeds is None:
            prompts = [_as_list(prompt), _as_list(prompt_2 or prompt)]
            layer = -2 if clip_skip is None else -(clip_skip + 2)
            prompt_embeds, pooled_prompt_embeds = self._encode_texts(prompts, device, None, layer, True, pooled_prompt_embeds)
        if pooled_prompt_embeds is None:
            raise ValueError("No pooled prompt embedding: pass pooled_prompt_embeds, or use a CLIPTextModelWithProjection "
                             "as text_encoder_2.")
        if do_classifier_free_guidance and negative_prompt_embeds is None:
            if negative_prompt is None and self.config.force_zeros_for_empty_prompt:
                negative_prompt_embeds = torch.zeros_like(prompt_embeds)
                negative_pooled_prompt_embeds = torch.zeros_like(pooled_prompt_embeds)
            else:
                negative_prompt = negative_prompt or ""
                negative_prompt_2 = negative_prompt_2 or negative_prompt
                negatives = [_per_prompt(negative_prompt, batch_size, "negative_prompt"),
                             _per_prompt(negative_prompt_2, batch_size, "negative_prompt_2")]
                negative_prompt_embeds, negative_pooled_prompt_embeds = self._encode_texts(
                    negatives, device, prompt_embeds.shape[1], -2, False, negative_pooled_prompt_embeds
                )
        encoder = self.text_encoder_2 if self.text_encoder_2 is not None else self.unet
        dtype = encoder.dtype

        def ready(embeds: torch.Tensor | None) -> torch.Tensor | None:
            return None if embeds is None else _repeat(embeds.to(dtype=dtype, device=device), num_images_per_prompt)

        if not do_classifier_free_guidance:
            return ready(prompt_embeds), None, ready(pooled_prompt_embeds), None
        return ready(prompt_embeds), ready(negative_prompt_embeds), ready(pooled_prompt_embeds), ready(negative_pooled_prompt_embeds)

    # --- checks --------------------------------------------------------------------------------
    def check_inputs(
        self,
        prompt: Any,
        prompt_2: Any,
        height: int,
        width: int,
        negative_prompt: Any = None,
        negative_prompt_2: Any = None,
        prompt_embeds: torch.Tensor | None = None,
        negative_prompt_embeds: torch.Tensor | None = None,
        pooled_prompt_embeds: torch.Tensor | None = None,
        negative_pooled_prompt_embeds: torch.Tensor | None = None,
        callback_on_step_end_tensor_inputs: Any = None,
    ) -> None:
        factor = self.vae_scale_factor
        if height % factor or width % factor:
            raise ValueError(
                f"height and width must be multiples of {factor} (the VAE's scale factor), got {height}x{width}. "
                f"Try {height - height % factor}x{width - width % factor}."
            )
        check_callback_inputs(callback_on_step_end_tensor_inputs, self._callback_tensor_inputs)
        check_sdxl_prompts(prompt, prompt_2, negative_prompt, negative_prompt_2, prompt_embeds, negative_prompt_embeds,
                           pooled_prompt_embeds, negative_pooled_prompt_embeds)

    # --- micro-conditioning ----------------------------------------------------------------------
    def _projection_dim(self, pooled_prompt_embeds: torch.Tensor) -> int:
        if self.text_encoder_2 is None:
            return int(pooled_prompt_embeds.shape[-1])
        return self.text_encoder_2.config.projection_dim

    def _get_add_time_ids(
        self, original_size: Sequence[int], crops_coords_top_left: Sequence[int], target_size: Sequence[int],
        dtype: torch.dtype, text_encoder_projection_dim: int | None = None,
    ) -> torch.Tensor:
        """(1, 6): original (h, w), crop corner (top, left), target (h, w), checked against the UNet's embedding."""
        ids = [*_pair(original_size, "original_size"), *_pair(crops_coords_top_left, "crops_coords_top_left"),
               *_pair(target_size, "target_size")]
        check_add_embed_dim(self.unet, len(ids), text_encoder_projection_dim)
        return torch.tensor([ids], dtype=dtype)

    def _conditioning(self, embeds: dict[str, Any], guided: bool) -> dict[str, Any]:
        """Text conditioning plus SDXL's ``added_cond_kwargs``, [negative, positive] stacked when guided."""
        text, pooled, time_ids = embeds["prompt_embeds"], embeds["add_text_embeds"], embeds["add_time_ids"]
        if guided:
            text = torch.cat([embeds["negative_prompt_embeds"], text])
            pooled = torch.cat([embeds["negative_pooled_prompt_embeds"], pooled])
            time_ids = torch.cat([embeds["add_neg_time_ids"], time_ids])
        return {"encoder_hidden_states": text, "added_cond_kwargs": {"text_embeds": pooled, "time_ids": time_ids}}

    # --- decoding ------------------------------------------------------------------------------
    def _decode(self, latents: torch.Tensor, output_type: str, device: torch.device, dtype: torch.dtype) -> StableDiffusionXLPipelineOutput:
        if output_type == "latent":
            return StableDiffusionXLPipelineOutput(images=latents)
        upcast = self.vae.dtype == torch.float16 and self.vae.config.get("force_upcast", False)
        if upcast:  # SDXL's VAE overflows in float16
            self.vae.to(dtype=torch.float32)
        try:
            latents = unscale_latents(self.vae, latents.to(self.vae.dtype))
            image = self.vae.decode(latents, return_dict=False)[0]
        finally:
            if upcast:
                self.vae.to(dtype=torch.float16)
        return StableDiffusionXLPipelineOutput(images=self.image_processor.postprocess(image, output_type=output_type))

    # --- the pipeline --------------------------------------------------------------------------
    def _time_ids(
        self, pooled: torch.Tensor, total: int, device: torch.device, original_size: Any, crops_coords_top_left: Any,
        target_size: Any, negative_original_size: Any, negative_crops_coords_top_left: Any, negative_target_size: Any,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(positive, negative) time ids, one row per image. As in diffusers, the negative ones differ only when
        both negative_original_size and negative_target_size are given."""
        projection = self._projection_dim(pooled)
        positive = self._get_add_time_ids(original_size, crops_coords_top_left, target_size, pooled.dtype, projection)
        negative = positive
        if negative_original_size is not None and negative_target_size is not None:
            negative = self._get_add_time_ids(negative_original_size, negative_crops_coords_top_left,
                                              negative_target_size, pooled.dtype, projection)
        return positive.to(device).repeat(total, 1), negative.to(device).repeat(total, 1)

    @torch.no_grad()  # torch re-enters it at every resumption of the generator
    def stream(
        self,
        prompt: str | list[str] | None = None,
        prompt_2: str | list[str] | None = None,
        height: int | None = None,
        width: int | None = None,
        num_inference_steps: int = 50,
        timesteps: list[int] | None = None,
        sigmas: list[float] | None = None,
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
        clip_skip: int | None = None,
        callback_on_step_end: Callable | None = None,
        callback_on_step_end_tensor_inputs: list[str] | None = None,
    ) -> Iterator[DenoisingStep]:
        """Generate images step by step: yields a DenoisingStep per denoising step; the last one has ``output``."""
        height = height or self.default_sample_size * self.vae_scale_factor
        width = width or self.default_sample_size * self.vae_scale_factor
        original_size = original_size or (height, width)
        target_size = target_size or (height, width)
        callback_inputs = list(callback_on_step_end_tensor_inputs or ["latents"])
        self.check_inputs(prompt, prompt_2, height, width, negative_prompt, negative_prompt_2, prompt_embeds,
                          negative_prompt_embeds, pooled_prompt_embeds, negative_pooled_prompt_embeds, callback_inputs)
        check_num_images(num_images_per_prompt)
        denoising_end = denoising_fraction(denoising_end, "denoising_end")
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
            total = batch_size * num_images_per_prompt
            latents = self.prepare_latents(total, self.unet.config.in_channels, height, width, prompt_embeds.dtype,
                                           device, generator, latents)
            add_time_ids, add_neg_time_ids = self._time_ids(
                pooled, total, device, original_size, crops_coords_top_left, target_size, negative_original_size,
                negative_crops_coords_top_left, negative_target_size,
            )
            timesteps, steps = cut_at_denoising_end(self.scheduler, timesteps, steps, denoising_end)
            if hasattr(self.scheduler, "set_begin_index"):
                self.scheduler.set_begin_index(0)
            embeds = {
                "prompt_embeds": prompt_embeds, "negative_prompt_embeds": negative_prompt_embeds if guided else None,
                "add_text_embeds": pooled, "negative_pooled_prompt_embeds": negative_pooled,
                "add_time_ids": add_time_ids, "add_neg_time_ids": add_neg_time_ids,
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

    def __call__(self, *args: Any, return_dict: bool = True, **kwargs: Any) -> Any:
        """Generate images (diffusers' arguments); returns StableDiffusionXLPipelineOutput(images)."""
        last = None
        for last in self.stream(*args, **kwargs):
            pass
        output = last.output if last is not None else StableDiffusionXLPipelineOutput(images=[])
        return output if return_dict else (output.images,)


# --- shared with the SDXL image-to-image pipeline --------------------------------------------------
def scale_latents(vae: Any, latents: torch.Tensor) -> torch.Tensor:
    """VAE latents -> the UNet's space: per-channel (x - mean) / std when the VAE config has them, then x factor."""
    mean, std = vae.config.get("latents_mean"), vae.config.get("latents_std")
    if mean is not None and std is not None:
        mean, std = _channel_stats(mean, latents), _channel_stats(std, latents)
        return (latents - mean) * vae.config.scaling_factor / std
    return latents * vae.config.scaling_factor


def unscale_latents(vae: Any, latents: torch.Tensor) -> torch.Tensor:
    """The inverse of scale_latents, before decoding."""
    mean, std = vae.config.get("latents_mean"), vae.config.get("latents_std")
    if mean is not None and std is not None:
        return latents * _channel_stats(std, latents) / vae.config.scaling_factor + _channel_stats(mean, latents)
    return latents / vae.config.scaling_factor


def _channel_stats(values: Sequence[float], like: torch.Tensor) -> torch.Tensor:
    return torch.tensor(values).view(1, -1, 1, 1).to(like.device, like.dtype)


def check_add_embed_dim(unet: Any, num_time_ids: int, projection_dim: int | None) -> None:
    expected = unet.config.get("projection_class_embeddings_input_dim")
    passed = unet.config.addition_time_embed_dim * num_time_ids + (projection_dim or 0)
    if expected != passed:
        raise ValueError(
            f"The UNet's added embedding takes {expected} numbers, but {num_time_ids} time ids x "
            f"addition_time_embed_dim {unet.config.addition_time_embed_dim} + the pooled text embedding "
            f"({projection_dim}) make {passed}. Check unet.config (projection_class_embeddings_input_dim) against "
            "text_encoder_2.config.projection_dim, and requires_aesthetics_score for image-to-image (refiner) folders."
        )


def denoising_fraction(value: Any, name: str) -> float | None:
    """``denoising_start`` / ``denoising_end`` as a fraction strictly inside (0, 1), or None: 0 and 1 (the whole
    schedule) mean no cut, as in diffusers, which ignores values outside (0, 1)."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 1:
        raise ValueError(f"{name} is a fraction of the schedule, a number in [0, 1]; got {value!r}.")
    return float(value) if 0 < value < 1 else None


def cut_at_denoising_end(scheduler: Any, timesteps: torch.Tensor, steps: int, denoising_end: float | None
                         ) -> tuple[torch.Tensor, int]:
    """Keep the timesteps above the ``denoising_end`` point of the training schedule (for a refiner to finish)."""
    if denoising_end is None:
        return timesteps, steps
    train_steps = scheduler.config.num_train_timesteps
    cutoff = int(round(train_steps - denoising_end * train_steps))
    kept = int((timesteps >= cutoff).sum().item())
    return timesteps[:kept], kept


def check_sdxl_prompts(prompt: Any, prompt_2: Any, negative_prompt: Any, negative_prompt_2: Any, prompt_embeds: Any,
                       negative_prompt_embeds: Any, pooled_prompt_embeds: Any, negative_pooled_prompt_embeds: Any) -> None:
    """SD's prompt checks, plus the second prompts and the pooled embeddings that go with given embeddings."""
    check_prompts(prompt, prompt_embeds, negative_prompt, negative_prompt_embeds)
    if prompt_2 is not None and prompt_embeds is not None:
        raise ValueError("Pass either prompt_2 or prompt_embeds, not both.")
    if negative_prompt_2 is not None and negative_prompt_embeds is not None:
        raise ValueError("Pass either negative_prompt_2 or negative_prompt_embeds, not both.")
    for name, value in (("prompt_2", prompt_2), ("negative_prompt_2", negative_prompt_2)):
        if value is not None and not (isinstance(value, str) or (isinstance(value, list) and all(isinstance(v, str) for v in value))):
            raise TypeError(f"{name} must be a string or a list of strings, got {type(value).__name__}.")
    if isinstance(prompt, list) and isinstance(prompt_2, list) and len(prompt_2) != len(prompt):
        raise ValueError(f"Got {len(prompt_2)} entries in prompt_2 for {len(prompt)} prompts: pass one per prompt.")
    if prompt_embeds is not None and pooled_prompt_embeds is None:
        raise ValueError("With prompt_embeds, pass pooled_prompt_embeds too (from the same second text encoder).")
    if negative_prompt_embeds is not None and negative_pooled_prompt_embeds is None:
        raise ValueError("With negative_prompt_embeds, pass negative_pooled_prompt_embeds too (from the same second text encoder).")


def _per_prompt(texts: str | list[str], batch_size: int, name: str) -> list[str]:
    if isinstance(texts, str):
        return [texts] * batch_size
    if len(texts) != batch_size:
        raise ValueError(f"Got {len(texts)} entries in {name} for {batch_size} prompts: pass one per prompt, or one string.")
    return list(texts)


def _pair(value: Any, name: str) -> list[Any]:
    if not (isinstance(value, (tuple, list)) and len(value) == 2):
        raise ValueError(f"{name} must be a pair (height, width) or (top, left), got {value!r}.")
    return list(value)
