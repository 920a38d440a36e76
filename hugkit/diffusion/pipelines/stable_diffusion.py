"""StableDiffusionPipeline: text to image with SD 1.x / 2.x checkpoints, as diffusers computes it.

``stream(...)`` is the pipeline: a generator that encodes the prompt, draws the starting latents, runs the
denoising loop (yielding a ``DenoisingStep`` after every step) and finally decodes, runs the safety checker and
yields the last step with ``output`` set. ``__call__`` folds over it and returns that output, so both give the same
images for the same seed. Subclasses (img2img, inpaint) reuse the prompt encoding, the loop and the decoding and
change how the starting latents are made and what each step feeds the UNet.
"""

from __future__ import annotations

import logging
from typing import Any, Callable, Iterator

import torch

from ..denoising import (
    DenoisingStep,
    StableDiffusionPipelineOutput,
    check_callback_inputs,
    guidance_scale_embedding,
    rescale_noise_cfg,
    retrieve_timesteps,
    step_kwargs,
)
from ..image_processor import VaeImageProcessor
from ..pipeline_utils import DiffusionPipeline
from ..utils import randn_tensor

logger = logging.getLogger(__name__)


class StableDiffusionPipeline(DiffusionPipeline):
    _optional_components = ["safety_checker", "feature_extractor", "image_encoder"]
    model_cpu_offload_seq = "text_encoder->image_encoder->unet->vae"
    _callback_tensor_inputs = ["latents", "prompt_embeds", "negative_prompt_embeds"]
    latent_format = "sd"

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
        fix_outdated_scheduler_config(scheduler)
        if safety_checker is not None and feature_extractor is None:
            raise ValueError(
                "A safety checker needs its feature_extractor (a CLIPImageProcessor) to prepare images; pass "
                "feature_extractor=..., or safety_checker=None to run without the checker."
            )
        if safety_checker is None and requires_safety_checker:
            logger.info("Running %s without a safety checker.", type(self).__name__)
        self.register_modules(
            vae=vae, text_encoder=text_encoder, tokenizer=tokenizer, unet=unet, scheduler=scheduler,
            safety_checker=safety_checker, feature_extractor=feature_extractor, image_encoder=image_encoder,
        )
        self.vae_scale_factor = 2 ** (len(vae.config.block_out_channels) - 1) if vae is not None else 8
        self.image_processor = VaeImageProcessor(vae_scale_factor=self.vae_scale_factor)
        self.register_to_config(requires_safety_checker=requires_safety_checker)

    # --- prompt --------------------------------------------------------------------------------
    def _text_embeddings(self, texts: list[str], device: torch.device, clip_skip: int | None, warn: bool) -> torch.Tensor:
        tokens = self.tokenizer(texts, padding="max_length", max_length=self.tokenizer.model_max_length,
                                truncation=True, return_tensors="pt")
        ids = tokens["input_ids"]
        if warn:
            warn_if_truncated(self.tokenizer, texts, ids)
        mask = tokens["attention_mask"].to(device) if getattr(self.text_encoder.config, "use_attention_mask", False) else None
        if clip_skip is None:
            return self.text_encoder(ids.to(device), attention_mask=mask)[0]
        hidden = self.text_encoder(ids.to(device), attention_mask=mask, output_hidden_states=True).hidden_states
        final_norm = getattr(self.text_encoder, "text_model", self.text_encoder).final_layer_norm
        return final_norm(hidden[-(clip_skip + 1)])

    def encode_prompt(
        self,
        prompt: str | list[str] | None,
        device: torch.device,
        num_images_per_prompt: int,
        do_classifier_free_guidance: bool,
        negative_prompt: str | list[str] | None = None,
        prompt_embeds: torch.Tensor | None = None,
        negative_prompt_embeds: torch.Tensor | None = None,
        lora_scale: float | None = None,
        clip_skip: int | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(prompt embeddings, negative embeddings or None), each repeated ``num_images_per_prompt`` times.
        ``clip_skip=k`` takes the text encoder's k-th layer from the end (after its final layer norm)."""
        batch_size = _batch_size(prompt, prompt_embeds)
        if prompt_embeds is None:
            prompt_embeds = self._text_embeddings(_as_list(prompt), device, clip_skip, warn=True)
        dtype = self.text_encoder.dtype if self.text_encoder is not None else self.unet.dtype
        prompt_embeds = _repeat(prompt_embeds.to(dtype=dtype, device=device), num_images_per_prompt)
        if do_classifier_free_guidance and negative_prompt_embeds is None:
            uncond = _negative_texts(prompt, negative_prompt, batch_size)
            negative_prompt_embeds = self._text_embeddings(uncond, device, None, warn=False)
        if do_classifier_free_guidance:
            negative_prompt_embeds = _repeat(negative_prompt_embeds.to(dtype=dtype, device=device), num_images_per_prompt)
        return prompt_embeds, negative_prompt_embeds

    # --- checks --------------------------------------------------------------------------------
    def check_inputs(
        self,
        prompt: Any,
        height: int,
        width: int,
        negative_prompt: Any = None,
        prompt_embeds: torch.Tensor | None = None,
        negative_prompt_embeds: torch.Tensor | None = None,
        callback_on_step_end_tensor_inputs: Any = None,
    ) -> None:
        factor = self.vae_scale_factor
        if height % factor or width % factor:
            raise ValueError(
                f"height and width must be multiples of {factor} (the VAE's scale factor), got {height}x{width}. "
                f"Try {height - height % factor}x{width - width % factor}."
            )
        check_callback_inputs(callback_on_step_end_tensor_inputs, self._callback_tensor_inputs)
        check_prompts(prompt, prompt_embeds, negative_prompt, negative_prompt_embeds)

    # --- latents -------------------------------------------------------------------------------
    def prepare_latents(
        self, batch_size: int, num_channels_latents: int, height: int, width: int, dtype: torch.dtype,
        device: torch.device, generator: Any, latents: torch.Tensor | None = None,
    ) -> torch.Tensor:
        shape = (batch_size, num_channels_latents, int(height) // self.vae_scale_factor, int(width) // self.vae_scale_factor)
        check_generators(generator, batch_size)
        if latents is None:
            latents = randn_tensor(shape, generator=generator, device=device, dtype=dtype)
        else:
            if tuple(latents.shape) != shape:
                raise ValueError(f"latents should have shape {shape} for this batch and size, got {tuple(latents.shape)}.")
            latents = latents.to(device)
        return latents * self.scheduler.init_noise_sigma

    def run_safety_checker(self, image: torch.Tensor, device: torch.device, dtype: torch.dtype) -> tuple[Any, Any]:
        if self.safety_checker is None:
            return image, None
        pil = self.image_processor.postprocess(image, output_type="pil")
        clip_input = self.feature_extractor(pil, return_tensors="pt")["pixel_values"].to(device=device, dtype=dtype)
        return self.safety_checker(images=image, clip_input=clip_input)

    def _decode(self, latents: torch.Tensor, output_type: str, device: torch.device, dtype: torch.dtype) -> StableDiffusionPipelineOutput:
        if output_type == "latent":
            return StableDiffusionPipelineOutput(images=latents, nsfw_content_detected=None)
        image = self.vae.decode(latents / self.vae.config.scaling_factor, return_dict=False)[0]
        image, has_nsfw = self.run_safety_checker(image, device, dtype)
        denormalize = None if has_nsfw is None else [not flagged for flagged in has_nsfw]
        image = self.image_processor.postprocess(image, output_type=output_type, do_denormalize=denormalize)
        return StableDiffusionPipelineOutput(images=image, nsfw_content_detected=has_nsfw)

    # --- the loop ------------------------------------------------------------------------------
    def _denoising_loop(
        self,
        latents: torch.Tensor,
        timesteps: torch.Tensor,
        num_inference_steps: int,
        embeds: dict[str, Any],
        guidance_scale: float,
        guidance_rescale: float,
        unet_kwargs: dict[str, Any],
        extra_step_kwargs: dict[str, Any],
        callback_on_step_end: Callable | None,
        callback_inputs: list[str],
        decode: Callable[[torch.Tensor], Any],
        model_input: Callable[[torch.Tensor, Any], torch.Tensor] | None = None,
        after_step: Callable[[torch.Tensor, int, Any], torch.Tensor] | None = None,
    ) -> Iterator[DenoisingStep]:
        """Yield a DenoisingStep after each step; the last one is yielded after ``decode(latents)`` has set its
        ``output`` (after an interrupt, the last step computed is yielded again with it). ``embeds`` holds prompt_embeds / negative_prompt_embeds (and SDXL's pooled embeddings and time ids)
        that a callback may replace; ``model_input`` adds channels to the UNet input (inpainting UNets),
        ``after_step`` edits the latents after each step (inpainting with a plain UNet)."""
        guided = embeds["negative_prompt_embeds"] is not None
        order = getattr(self.scheduler, "order", 1)
        warmup = len(timesteps) - num_inference_steps * order
        self._interrupt = False
        step = None
        with self.progress_bar(total=num_inference_steps) as bar:
            for i, t in enumerate(timesteps):
                if self._interrupt:
                    break
                conditioning = self._conditioning(embeds, guided)
                latent_input = torch.cat([latents] * 2) if guided else latents
                latent_input = self.scheduler.scale_model_input(latent_input, t)
                if model_input is not None:
                    latent_input = model_input(latent_input, t)
                noise_pred = self.unet(latent_input, t, **conditioning, **unet_kwargs, return_dict=False)[0]
                if guided:
                    noise_uncond, noise_text = noise_pred.chunk(2)
                    noise_pred = noise_uncond + guidance_scale * (noise_text - noise_uncond)
                    if guidance_rescale > 0.0:
                        noise_pred = rescale_noise_cfg(noise_pred, noise_text, guidance_rescale=guidance_rescale)
                latents = self.scheduler.step(noise_pred, t, latents, **extra_step_kwargs, return_dict=False)[0]
                if after_step is not None:
                    latents = after_step(latents, i, t)
                if callback_on_step_end is not None:
                    values = {"latents": latents, **embeds}
                    returned = callback_on_step_end(self, i, t, {k: values[k] for k in callback_inputs}) or {}
                    latents = returned.pop("latents", latents)
                    embeds.update({k: v for k, v in returned.items() if k in embeds})
                if i == len(timesteps) - 1 or ((i + 1) > warmup and (i + 1) % order == 0):
                    bar.update()
                step = DenoisingStep(i, t, latents, len(timesteps), self.latent_format)
                if i < len(timesteps) - 1:
                    yield step
        if step is not None:  # None: interrupted before the first step
            step.output = decode(step.latents)
            yield step

    def _conditioning(self, embeds: dict[str, Any], guided: bool) -> dict[str, Any]:
        """The UNet's text conditioning for one step: [negative, positive] stacked when guided."""
        prompt_embeds = embeds["prompt_embeds"]
        if guided:
            prompt_embeds = torch.cat([embeds["negative_prompt_embeds"], prompt_embeds])
        return {"encoder_hidden_states": prompt_embeds}

    @torch.no_grad()  # torch re-enters it at every resumption of the generator
    def stream(
        self,
        prompt: str | list[str] | None = None,
        height: int | None = None,
        width: int | None = None,
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
        guidance_rescale: float = 0.0,
        clip_skip: int | None = None,
        callback_on_step_end: Callable | None = None,
        callback_on_step_end_tensor_inputs: list[str] | None = None,
    ) -> Iterator[DenoisingStep]:
        """Generate images step by step: yields a DenoisingStep per denoising step; the last one has ``output``."""
        height, width = self._default_size(height, width)
        callback_inputs = list(callback_on_step_end_tensor_inputs or ["latents"])
        self.check_inputs(prompt, height, width, negative_prompt, prompt_embeds, negative_prompt_embeds, callback_inputs)
        check_num_images(num_images_per_prompt)
        batch_size = _batch_size(prompt, prompt_embeds)
        device = self._execution_device
        guided = guidance_scale > 1 and self.unet.config.get("time_cond_proj_dim") is None
        try:
            prompt_embeds, negative_prompt_embeds = self.encode_prompt(
                prompt, device, num_images_per_prompt, guided, negative_prompt, prompt_embeds=prompt_embeds,
                negative_prompt_embeds=negative_prompt_embeds, clip_skip=clip_skip,
            )
            timesteps, num_inference_steps = retrieve_timesteps(self.scheduler, num_inference_steps, device, timesteps, sigmas)
            total = batch_size * num_images_per_prompt
            latents = self.prepare_latents(total, self.unet.config.in_channels, height, width, prompt_embeds.dtype,
                                           device, generator, latents)
            unet_kwargs = {"cross_attention_kwargs": cross_attention_kwargs}
            unet_kwargs["timestep_cond"] = self._timestep_cond(guidance_scale, total, device, latents.dtype)
            embeds = {"prompt_embeds": prompt_embeds, "negative_prompt_embeds": negative_prompt_embeds if guided else None}
            yield from self._denoising_loop(
                latents, timesteps, num_inference_steps, embeds, guidance_scale, guidance_rescale, unet_kwargs,
                step_kwargs(self.scheduler, generator, eta), callback_on_step_end, callback_inputs,
                decode=lambda final: self._decode(final, output_type, device, prompt_embeds.dtype),
            )
        finally:
            self.maybe_free_model_hooks()

    def __call__(self, *args: Any, return_dict: bool = True, **kwargs: Any) -> Any:
        """Generate images (diffusers' arguments); returns StableDiffusionPipelineOutput(images, nsfw_content_detected)."""
        last = None
        for last in self.stream(*args, **kwargs):
            pass
        output = last.output if last is not None else StableDiffusionPipelineOutput(images=[], nsfw_content_detected=None)
        return output if return_dict else (output.images, output.nsfw_content_detected)

    # --- small pieces --------------------------------------------------------------------------
    def _default_size(self, height: int | None, width: int | None) -> tuple[int, int]:
        sample = self.unet.config.sample_size
        sample_h, sample_w = (sample, sample) if isinstance(sample, int) else tuple(sample)
        return height or sample_h * self.vae_scale_factor, width or sample_w * self.vae_scale_factor

    def _timestep_cond(self, guidance_scale: float, batch: int, device: torch.device, dtype: torch.dtype) -> Any:
        """LCM-distilled UNets take the guidance scale as an embedding instead of a second (unconditional) pass."""
        dim = self.unet.config.get("time_cond_proj_dim")
        if dim is None:
            return None
        scale = torch.tensor(guidance_scale - 1).repeat(batch)
        return guidance_scale_embedding(scale, embedding_dim=dim).to(device=device, dtype=dtype)


# --- shared by the SD pipelines ----------------------------------------------------------------
def fix_outdated_scheduler_config(scheduler: Any) -> None:
    """Old SD folders shipped scheduler configs with steps_offset 0 or clip_sample True; diffusers corrects
    both when a pipeline is built, so hugkit does too (the images would differ otherwise)."""
    if scheduler is None:
        return
    if scheduler.config.get("steps_offset", 1) != 1:
        scheduler.register_to_config(steps_offset=1)
    if scheduler.config.get("clip_sample", False) is True:
        scheduler.register_to_config(clip_sample=False)


def warn_if_truncated(tokenizer: Any, texts: list[str], ids: torch.Tensor) -> None:
    """CLIP reads 77 tokens; say what was cut, as diffusers does."""
    full = tokenizer(texts, padding="longest", return_tensors="pt")["input_ids"]
    if full.shape[-1] > ids.shape[-1]:
        removed = tokenizer.batch_decode(full[:, tokenizer.model_max_length - 1 : -1])
        logger.warning(
            "Part of the prompt was truncated because CLIP can only handle sequences up to %d tokens: %s",
            tokenizer.model_max_length, removed,
        )


def check_prompts(prompt: Any, prompt_embeds: Any, negative_prompt: Any, negative_prompt_embeds: Any) -> None:
    if prompt is not None and prompt_embeds is not None:
        raise ValueError("Pass either prompt or prompt_embeds, not both.")
    if prompt is None and prompt_embeds is None:
        raise ValueError("Pass a prompt (a string or a list of strings) or prompt_embeds.")
    if prompt is not None and not (isinstance(prompt, str) or (isinstance(prompt, list) and all(isinstance(p, str) for p in prompt))):
        raise TypeError(f"prompt must be a string or a list of strings, got {type(prompt).__name__}.")
    if isinstance(prompt, list) and not prompt:
        raise ValueError("prompt is an empty list: pass at least one prompt.")
    if negative_prompt is not None and negative_prompt_embeds is not None:
        raise ValueError("Pass either negative_prompt or negative_prompt_embeds, not both.")
    if negative_prompt is not None and prompt is not None:
        if type(negative_prompt) is not type(prompt) and not isinstance(negative_prompt, str):
            raise TypeError(
                f"negative_prompt should be a string or a list like prompt, got {type(negative_prompt).__name__} "
                f"for a {type(prompt).__name__} prompt."
            )
        if isinstance(negative_prompt, list) and len(negative_prompt) != _batch_size(prompt, None):
            raise ValueError(
                f"Got {len(negative_prompt)} negative prompts for {_batch_size(prompt, None)} prompts: pass one "
                "negative prompt per prompt, or a single string for all of them."
            )
    if prompt_embeds is not None and negative_prompt_embeds is not None and prompt_embeds.shape != negative_prompt_embeds.shape:
        raise ValueError(
            f"prompt_embeds {tuple(prompt_embeds.shape)} and negative_prompt_embeds {tuple(negative_prompt_embeds.shape)} "
            "must have the same shape."
        )


def check_generators(generator: Any, batch_size: int) -> None:
    if isinstance(generator, list) and len(generator) != batch_size:
        raise ValueError(
            f"Got a list of {len(generator)} generators for {batch_size} images (prompts x num_images_per_prompt): "
            "pass one generator, or exactly one per image."
        )


def check_num_images(num_images_per_prompt: Any) -> None:
    if isinstance(num_images_per_prompt, bool) or not isinstance(num_images_per_prompt, int) or num_images_per_prompt < 1:
        raise ValueError(f"num_images_per_prompt must be a positive integer, got {num_images_per_prompt!r}.")


def _batch_size(prompt: Any, prompt_embeds: Any) -> int:
    if isinstance(prompt, str):
        return 1
    if isinstance(prompt, list):
        return len(prompt)
    return prompt_embeds.shape[0]


def _as_list(prompt: str | list[str]) -> list[str]:
    return [prompt] if isinstance(prompt, str) else list(prompt)


def _negative_texts(prompt: Any, negative_prompt: Any, batch_size: int) -> list[str]:
    if negative_prompt is None:
        return [""] * batch_size
    if isinstance(negative_prompt, str):
        return [negative_prompt] * batch_size  # one negative prompt for every prompt
    return list(negative_prompt)


def _repeat(embeds: torch.Tensor, times: int) -> torch.Tensor:
    """(batch, ...) -> (batch * times, ...), each row repeated in place (the order diffusers uses)."""
    return embeds.repeat_interleave(times, dim=0) if times > 1 else embeds
