"""ModelMixin: a diffusers model component (UNet, VAE) built on the meta device and filled from its weights in one pass.

A diffusers component folder holds ``config.json`` (the ``__init__`` arguments, see configuration.py) and
``diffusion_pytorch_model[.variant].safetensors``. Loading goes through hugkit's mmap reader like every other model:
the module tree is built on the meta device without random initialisation, then each checkpoint tensor is
assigned (converted to the requested dtype as it is read), so peak memory stays near the size of the weights.
Key accounting is strict: a missing or unexpected weight is an error naming it.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any, ClassVar

import torch
from torch import nn

from ..config import pop_hub_kwargs
from ..loading import find_weight_files, iter_checkpoint, save_safetensors
from ..modeling_utils import (
    _assign, _is_persistent, _no_weight_init, _short_list, materialize_leftovers, resolve_device, to_torch_dtype,
)
from .configuration import ConfigMixin

logger = logging.getLogger(__name__)

WEIGHTS_NAMES = ("diffusion_pytorch_model.safetensors", "diffusion_pytorch_model.bin")

# Keyword arguments diffusers' from_pretrained accepts that change nothing here.
_IGNORED_LOAD_KWARGS = ("low_cpu_mem_usage", "output_loading_info", "force_download", "proxies", "max_memory",
                        "offload_folder", "offload_state_dict", "mirror", "resume_download")


class ModelMixin(nn.Module, ConfigMixin):
    config_name: ClassVar[str] = "config.json"

    # --- properties ----------------------------------------------------------------------------
    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    @property
    def dtype(self) -> torch.dtype:
        return next(p.dtype for p in self.parameters() if p.is_floating_point())

    def num_parameters(self, only_trainable: bool = False) -> int:
        return sum(p.numel() for p in self.parameters() if p.requires_grad or not only_trainable)

    @classmethod
    def _convert_checkpoint_key(cls, key: str) -> str:
        """Map a legacy checkpoint key to today's name (subclasses override; the default keeps it)."""
        return key

    @classmethod
    def _convert_checkpoint_tensor(cls, key: str, tensor: torch.Tensor) -> torch.Tensor:
        """Reshape a legacy tensor to today's shape (e.g. 1x1-conv attention weights to linear ones)."""
        return tensor

    # --- loading -------------------------------------------------------------------------------
    @classmethod
    def from_pretrained(
        cls,
        pretrained_model_name_or_path: str | os.PathLike,
        subfolder: str | None = None,
        *,
        torch_dtype: Any = None,
        dtype: Any = None,
        variant: str | None = None,
        use_safetensors: bool | None = None,
        device: Any = None,
        device_map: Any = None,
        **kwargs: Any,
    ) -> "ModelMixin":
        """Load a component folder (or a pipeline folder with ``subfolder="unet"``); other ``kwargs`` override
        config fields, as in diffusers."""
        from ..hub import resolve

        for ignored in _IGNORED_LOAD_KWARGS:
            kwargs.pop(ignored, None)
        hub_kwargs = pop_hub_kwargs(kwargs)
        hub_kwargs.pop("subfolder", None)
        folder = resolve(pretrained_model_name_or_path, subfolder=subfolder or "", **hub_kwargs)
        config = cls.load_config(folder)
        files = find_weight_files(folder, variant=variant, use_safetensors=use_safetensors, names=WEIGHTS_NAMES)
        target_dtype = to_torch_dtype(dtype if dtype is not None else torch_dtype)
        with torch.device("meta"), _no_weight_init():
            model = cls.from_config(config, **kwargs)
        model.load_weights(files, dtype=target_dtype, device=resolve_device(device, device_map))
        model.eval()
        return model

    def load_weights(self, files: list[Path], *, dtype: torch.dtype | None, device: torch.device) -> None:
        """Fill this meta-device model from checkpoint files; every parameter must come from them."""
        self.load_state_items(iter_checkpoint(files, dtype), dtype=dtype, device=device,
                              source=", ".join(str(f) for f in files))

    def load_state_items(
        self, items: Any, *, dtype: torch.dtype | None = None, device: torch.device | str = "cpu", source: str = "the checkpoint"
    ) -> None:
        """Assign (name, tensor) pairs to this (meta-device) model with strict accounting. ``dtype`` None keeps
        float32 (diffusers' default), whatever the file stores."""
        dtype = dtype or torch.float32
        device = torch.device(device)
        expected = dict(self.named_parameters())
        expected.update((name, buf) for name, buf in self.named_buffers() if _is_persistent(self, name))
        loaded: set[str] = set()
        unexpected, mismatched = [], []
        for raw_key, tensor in items:
            key = self._convert_checkpoint_key(raw_key)
            target = expected.get(key)
            if target is None:
                unexpected.append(raw_key)
                continue
            tensor = self._convert_checkpoint_tensor(key, tensor)
            if tuple(tensor.shape) != tuple(target.shape):
                mismatched.append(f"{key}: checkpoint {tuple(tensor.shape)} vs model {tuple(target.shape)}")
                continue
            if tensor.is_floating_point() and tensor.dtype != dtype:
                tensor = tensor.to(dtype)
            _assign(self, key, tensor.to(device))
            loaded.add(key)
        missing = [key for key in expected if key not in loaded]
        problems = []
        if mismatched:
            problems.append("size mismatches:\n    " + "\n    ".join(mismatched))
        if unexpected:
            problems.append(f"unexpected keys: {_short_list(unexpected)}")
        if missing:
            problems.append(f"missing keys: {_short_list(missing)}")
        if problems:
            raise ValueError(
                f"The weights in {source} do not fit {type(self).__name__} built from its config: "
                + "; ".join(problems)
                + ". Check that config.json belongs to these weights (a component folder needs both from the same save)."
            )
        materialize_leftovers(self, device)

    # --- saving --------------------------------------------------------------------------------
    def save_pretrained(
        self,
        save_directory: str | os.PathLike,
        *,
        safe_serialization: bool = True,
        variant: str | None = None,
        max_shard_size: int | str = "10GB",
        **kwargs: Any,
    ) -> None:
        """Write ``config.json`` and ``diffusion_pytorch_model[.variant].safetensors``, loadable by diffusers."""
        directory = Path(save_directory)
        if directory.is_file():
            raise ValueError(f"save_pretrained needs a folder, but {directory} is a file.")
        if any(getattr(module, "is_quantized", False) for module in self.modules()):
            raise ValueError(
                f"This {type(self).__name__} is quantized, and diffusers' folder format has no way to describe that. "
                "Save the float model and quantize when loading: from_pretrained(folder, quantization=...)."
            )
        directory.mkdir(parents=True, exist_ok=True)
        self.save_config(directory)
        state = {name: tensor for name, tensor in self.state_dict().items()}
        if safe_serialization:
            save_safetensors(state, directory, max_shard_size=max_shard_size, weights_name=WEIGHTS_NAMES[0], variant=variant)
        else:
            from ..loading import with_variant

            torch.save({k: v.contiguous() for k, v in state.items()}, directory / with_variant(WEIGHTS_NAMES[1], variant))

