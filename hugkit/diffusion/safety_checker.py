"""StableDiffusionSafetyChecker: flags generated images whose CLIP embedding is close to one of 17 NSFW concepts.

diffusers' class and checkpoint layout (``safety_checker/`` holds a CLIP config.json, model_type "clip", and
weights named ``vision_model.vision_model.*``, ``visual_projection.weight``, ``concept_embeds`` ...), loaded through
hugkit's strict loader. Scoring is diffusers' to the last rounding: per image, a cosine similarity to each concept
minus that concept's threshold, rounded to 3 decimals; a hit on one of the 3 "special care" concepts lowers every
later threshold by 0.01; any positive concept score flags the image, which is replaced by a black one.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..loading import iter_checkpoint, read_safetensors_header
from ..modeling_utils import PreTrainedModel
from ..models.clip import CLIPConfig, CLIPVisionModel

logger = logging.getLogger(__name__)

NUM_CONCEPTS = 17
NUM_SPECIAL_CARE = 3
SPECIAL_CARE_ADJUSTMENT = 0.01


class StableDiffusionSafetyChecker(PreTrainedModel):
    config_class = CLIPConfig
    main_input_name = "clip_input"

    def __init__(self, config: CLIPConfig) -> None:
        super().__init__(config)
        self.vision_model = CLIPVisionModel(config.vision_config)
        self.visual_projection = nn.Linear(config.vision_config.hidden_size, config.projection_dim, bias=False)
        # Fixed embeddings and thresholds from the checkpoint (never trained here).
        self.concept_embeds = nn.Parameter(torch.ones(NUM_CONCEPTS, config.projection_dim), requires_grad=False)
        self.special_care_embeds = nn.Parameter(torch.ones(NUM_SPECIAL_CARE, config.projection_dim), requires_grad=False)
        self.concept_embeds_weights = nn.Parameter(torch.ones(NUM_CONCEPTS), requires_grad=False)
        self.special_care_embeds_weights = nn.Parameter(torch.ones(NUM_SPECIAL_CARE), requires_grad=False)

    def load_checkpoint(self, files: list[Path], **kwargs: Any) -> None:
        """transformers 5 saves the vision tower one level flatter (``vision_model.embeddings...`` instead of
        ``vision_model.vision_model.embeddings...``): such a checkpoint fills the inner transformer directly."""
        if _has_flat_vision_layout(files):
            wrapper = self.vision_model
            self.vision_model = wrapper.vision_model
            try:
                super().load_checkpoint(files, **kwargs)
            finally:
                self.vision_model = wrapper
        else:
            super().load_checkpoint(files, **kwargs)
        for fixed in (self.concept_embeds, self.special_care_embeds, self.concept_embeds_weights,
                      self.special_care_embeds_weights):
            fixed.requires_grad_(False)

    @torch.no_grad()
    def forward(self, clip_input: torch.Tensor, images: Any) -> tuple[Any, list[bool]]:
        """(``images`` with flagged ones blacked out, one bool per image). ``clip_input`` is the
        CLIPImageProcessor's pixel_values for the same images; ``images`` is a tensor, an array or a list of
        them (modified in place, as in diffusers)."""
        if not isinstance(clip_input, torch.Tensor):
            raise TypeError(
                f"clip_input should be the pixel_values tensor from the pipeline's feature_extractor, found "
                f"{type(clip_input).__name__}."
            )
        if len(images) != clip_input.shape[0]:
            raise ValueError(f"Got {len(images)} images but clip_input holds {clip_input.shape[0]}; they must match.")
        pooled = self.vision_model(clip_input, return_dict=True).pooler_output
        image_embeds = self.visual_projection(pooled)
        # float32 on the host: the scores are rounded to 3 decimals, so they are computed as diffusers does.
        special_cos = _cosine(image_embeds, self.special_care_embeds).cpu().float().numpy()
        concept_cos = _cosine(image_embeds, self.concept_embeds).cpu().float().numpy()
        special_thresholds = [w.item() for w in self.special_care_embeds_weights]
        concept_thresholds = [w.item() for w in self.concept_embeds_weights]
        flagged = [
            _is_nsfw(special_cos[i], concept_cos[i], special_thresholds, concept_thresholds)
            for i in range(image_embeds.shape[0])
        ]
        for index, is_flagged in enumerate(flagged):
            if is_flagged:
                images[index] = _black_like(images[index])
        if any(flagged):
            logger.warning(
                "Potential NSFW content was detected in one or more images. A black image will be returned instead. "
                "Try again with a different prompt and/or seed."
            )
        return images, flagged


def _cosine(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return F.normalize(a) @ F.normalize(b).t()


def _is_nsfw(special_cos: np.ndarray, concept_cos: np.ndarray, special_thresholds: list[float],
             concept_thresholds: list[float]) -> bool:
    adjustment = 0.0
    for cos, threshold in zip(special_cos, special_thresholds):
        if round(cos - threshold + adjustment, 3) > 0:
            adjustment = SPECIAL_CARE_ADJUSTMENT  # applies to the special concepts after this one too
    return any(round(cos - threshold + adjustment, 3) > 0 for cos, threshold in zip(concept_cos, concept_thresholds))


def _black_like(image: Any) -> Any:
    if isinstance(image, torch.Tensor):
        return torch.zeros_like(image)
    return np.zeros_like(np.asarray(image))


def _has_flat_vision_layout(files: list[Path]) -> bool:
    for path in files:
        if path.suffix == ".safetensors":
            names = read_safetensors_header(path)[0]
        else:
            names = dict(iter_checkpoint([path]))
        if any(name.startswith("vision_model.embeddings.") for name in names):
            return True
    return False
