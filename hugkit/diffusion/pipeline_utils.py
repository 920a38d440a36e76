"""DiffusionPipeline: a folder of components described by ``model_index.json``, loaded, moved and saved as one.

``model_index.json`` names each component as ``[library, class name]`` (``"unet": ["diffusers",
"UNet2DConditionModel"]``); hugkit loads each with its own class of that name (registry.py) from the subfolder of
the same name, through hugkit's mmap loading. The folder may be local, in the Hugging Face cache (shared with
diffusers) or on the hub. Subclasses (pipelines/) hold the generation loop; this file holds what every pipeline
shares: loading, ``.to()``, saving, the progress bar and the memory options.
"""

from __future__ import annotations

import inspect
import json
import logging
import os
from contextlib import contextmanager
from pathlib import Path
from typing import Any, ClassVar, Iterator

import torch
from torch import nn

from ..config import pop_hub_kwargs
from .configuration import DIFFUSERS_VERSION, ConfigMixin
from .registry import COMPONENT_CLASSES, find_component_class

logger = logging.getLogger(__name__)

MODEL_INDEX = "model_index.json"

# pipeline class name -> module defining it
PIPELINE_CLASSES: dict[str, str] = {
    "StableDiffusionPipeline": "hugkit.diffusion.pipelines.stable_diffusion",
    "StableDiffusionImg2ImgPipeline": "hugkit.diffusion.pipelines.stable_diffusion_img2img",
    "StableDiffusionInpaintPipeline": "hugkit.diffusion.pipelines.stable_diffusion_inpaint",
    "StableDiffusionXLPipeline": "hugkit.diffusion.pipelines.stable_diffusion_xl",
    "StableDiffusionXLImg2ImgPipeline": "hugkit.diffusion.pipelines.stable_diffusion_xl_img2img",
}

# Which library diffusers names in model_index.json for a component hugkit saves.
_LIBRARY_OF_MODULE = (
    ("hugkit.diffusion.safety_checker", "stable_diffusion"),
    ("hugkit.diffusion", "diffusers"),
    ("hugkit", "transformers"),
)


# Components quantize_ touches when given one scheme for the whole pipeline.
_QUANTIZED_BY_DEFAULT = ("unet", "text_encoder", "text_encoder_2")


def find_pipeline_class(name: str) -> type["DiffusionPipeline"]:
    module_name = PIPELINE_CLASSES.get(name)
    if module_name is None:
        raise ValueError(
            f"model_index.json names the pipeline {name!r}, which hugkit does not have. "
            f"Supported: {', '.join(PIPELINE_CLASSES)}. Load the folder with one of these classes if its components fit."
        )
    import importlib

    return getattr(importlib.import_module(module_name), name)


def _dtype_for(torch_dtype: Any, name: str) -> Any:
    """``torch_dtype`` may be one dtype or a dict per component with a "default" entry (diffusers' convention)."""
    if isinstance(torch_dtype, dict):
        return torch_dtype.get(name, torch_dtype.get("default"))
    return torch_dtype


class DiffusionPipeline(ConfigMixin):
    config_name: ClassVar[str] = MODEL_INDEX
    # Components a folder may lack or set to [null, null]; the pipeline runs without them.
    _optional_components: ClassVar[list[str]] = []
    # Order in which enable_model_cpu_offload moves components to the accelerator.
    model_cpu_offload_seq: ClassVar[str] = ""
    _callback_tensor_inputs: ClassVar[list[str]] = ["latents"]

    # --- components ----------------------------------------------------------------------------
    def register_modules(self, **modules: Any) -> None:
        for name, module in modules.items():
            entry = [None, None] if module is None else list(self._library_and_class(module))
            self.register_to_config(**{name: entry})
            setattr(self, name, module)

    @staticmethod
    def _library_and_class(module: Any) -> tuple[str, str]:
        class_name = getattr(module, "tokenizer_class", None) or type(module).__name__
        if class_name == "PreTrainedTokenizerFast":
            class_name = "CLIPTokenizer"
        module_path = type(module).__module__
        library = next((lib for prefix, lib in _LIBRARY_OF_MODULE if module_path.startswith(prefix)), module_path.split(".")[0])
        return library, class_name

    @classmethod
    def _component_names(cls) -> list[str]:
        """The components __init__ takes, in order (everything that is not a plain config value)."""
        parameters = inspect.signature(cls.__init__).parameters
        return [name for name, p in parameters.items() if name != "self" and name not in cls._config_parameters()
                and p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL)]

    @classmethod
    def _config_parameters(cls) -> set[str]:
        """__init__ arguments that are settings (``requires_safety_checker``), not components."""
        return {"requires_safety_checker", "force_zeros_for_empty_prompt", "add_watermarker", "requires_aesthetics_score"}

    @property
    def components(self) -> dict[str, Any]:
        return {name: getattr(self, name, None) for name in self._component_names()}

    def _modules(self) -> Iterator[tuple[str, nn.Module]]:
        for name, component in self.components.items():
            if isinstance(component, nn.Module):
                yield name, component

    # --- loading -------------------------------------------------------------------------------
    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path: str | os.PathLike, **kwargs: Any) -> "DiffusionPipeline":
        """Load every component a pipeline folder lists. Keywords as in diffusers: ``torch_dtype`` (one dtype or
        a dict per component with "default"), ``variant``, ``use_safetensors``, hub options (``revision``,
        ``cache_dir``, ``local_files_only``, ``token``), ``device``/``device_map``, and components to use instead
        of the folder's (``scheduler=...``, ``safety_checker=None``)."""
        from ..hub import resolve

        torch_dtype = kwargs.pop("torch_dtype", None)
        if torch_dtype is None:
            torch_dtype = kwargs.pop("dtype", None)
        variant = kwargs.pop("variant", None)
        use_safetensors = kwargs.pop("use_safetensors", None)
        device = kwargs.pop("device", None) or kwargs.pop("device_map", None)
        quantization = kwargs.pop("quantization", None)
        for ignored in ("low_cpu_mem_usage", "force_download", "proxies", "output_loading_info", "custom_pipeline",
                        "provider", "sess_options", "max_memory", "offload_folder", "offload_state_dict"):
            kwargs.pop(ignored, None)
        hub_kwargs = pop_hub_kwargs(kwargs)
        hub_kwargs.pop("subfolder", None)
        folder = resolve(pretrained_model_name_or_path, **hub_kwargs)
        if not (folder / MODEL_INDEX).is_file():
            present = sorted(p.name for p in folder.iterdir()) if folder.is_dir() else []
            raise FileNotFoundError(
                f"{folder} is not a diffusers pipeline folder: it has no {MODEL_INDEX} (files there: {present or 'none'}). "
                "Pass the folder that holds model_index.json and the unet/, vae/, text_encoder/ ... subfolders, "
                "or use from_single_file for a single .safetensors checkpoint."
            )
        from ..config import read_json

        index = read_json(folder / MODEL_INDEX, what="pipeline index")
        pipeline_class = cls
        if cls is DiffusionPipeline:  # the folder (or file) says which pipeline it is
            pipeline_class = find_pipeline_class(index.get("_class_name", ""))
        pipe = pipeline_class._load_from_folder(folder, index, torch_dtype, variant, use_safetensors, device, kwargs)
        if quantization is not None:
            pipe.quantize_(quantization)
        return pipe

    @classmethod
    def _load_from_folder(
        cls, folder: Path, index: dict, torch_dtype: Any, variant: str | None, use_safetensors: bool | None,
        device: Any, overrides: dict[str, Any],
    ) -> "DiffusionPipeline":
        names = cls._component_names()
        unknown = sorted(set(overrides) - set(names) - cls._config_parameters())
        if unknown:
            raise TypeError(
                f"{cls.__name__}.from_pretrained got unexpected arguments {unknown}. Components it takes: {', '.join(names)}."
            )
        init: dict[str, Any] = {}
        for name in names:
            if name in overrides:
                init[name] = overrides.pop(name)
                continue
            entry = index.get(name)
            if entry is None or entry == [None, None] or (isinstance(entry, list) and entry[1] is None):
                if name not in cls._optional_components:
                    raise ValueError(
                        f"The pipeline folder {folder} has no {name!r} component, which {cls.__name__} needs. "
                        f"Add it to model_index.json with its subfolder, or pass {name}=... to from_pretrained."
                    )
                init[name] = None
                continue
            init[name] = _load_component(
                folder, name, entry, _dtype_for(torch_dtype, name), variant, use_safetensors
            )
        for key in cls._config_parameters():
            if key in overrides:
                init[key] = overrides.pop(key)
            elif key in index and key in inspect.signature(cls.__init__).parameters:
                init[key] = index[key]
        pipe = cls(**init)
        if device is not None:
            from ..modeling_utils import resolve_device

            pipe.to(resolve_device(device))
        return pipe

    @classmethod
    def from_single_file(cls, pretrained_model_link_or_path: str | os.PathLike, **kwargs: Any) -> "DiffusionPipeline":
        """Load an original-layout SD 1.x / 2.x checkpoint (one .safetensors / .ckpt file) without a download:
        the components' configs come from the weights' shapes (single_file.py). A single file has no tokenizer:
        pass ``tokenizer=``, or ``config=`` (a diffusers pipeline folder whose tokenizer/ is used), or have the
        model's reference tokenizer in the HF cache. Also: ``torch_dtype``, ``prediction_type``, ``extract_ema``,
        ``image_size``, ``config_overrides`` ({"text_encoder": {"num_attention_heads": 16}} where shapes cannot
        tell), ``device``, and components to use instead of the file's (``vae=``, ``scheduler=``)."""
        from ..modeling_utils import resolve_device, to_torch_dtype
        from .single_file import convert_original_checkpoint

        dtype = to_torch_dtype(kwargs.pop("torch_dtype", None) or kwargs.pop("dtype", None))
        device = resolve_device(kwargs.pop("device", None) or kwargs.pop("device_map", None))
        config_folder = kwargs.pop("config", None)
        local_files_only = kwargs.pop("local_files_only", False)
        converted = convert_original_checkpoint(
            pretrained_model_link_or_path, prediction_type=kwargs.pop("prediction_type", None),
            extract_ema=kwargs.pop("extract_ema", False), image_size=kwargs.pop("image_size", None),
            torch_dtype=dtype, config_overrides=kwargs.pop("config_overrides", None),
        )
        pipeline_class = cls
        if cls is DiffusionPipeline:  # the folder (or file) says which pipeline it is
            pipeline_class = find_pipeline_class(converted.pipeline_class_name)
        init: dict[str, Any] = {}
        for name in pipeline_class._component_names():
            if name in kwargs:
                init[name] = kwargs.pop(name)
            elif name == "tokenizer":
                init[name] = _single_file_tokenizer(converted["tokenizer"].config, config_folder, local_files_only)
            elif name in converted:
                init[name] = _build_converted(converted[name], dtype, device)
            elif name in pipeline_class._optional_components:
                init[name] = None
            else:
                raise ValueError(
                    f"{pretrained_model_link_or_path} holds no {name!r} (it has {sorted(converted)}); pass {name}=... ."
                )
        if "requires_safety_checker" in inspect.signature(pipeline_class.__init__).parameters:
            init.setdefault("requires_safety_checker", kwargs.pop("requires_safety_checker", False))
        if kwargs:
            raise TypeError(f"from_single_file got unexpected arguments {sorted(kwargs)}.")
        return pipeline_class(**init)

    def quantize_(self, quantization: Any) -> "DiffusionPipeline":
        """Quantize the linear layers of the denoiser and text encoders with a hugkit scheme ("int8", "int4",
        "dynamic-int8", a QuantizationConfig), or per component with a dict ``{"unet": "dynamic-int8"}``.
        Convolutions and the VAE stay float: they carry most of the compute but little of the linear work."""
        from ..quantization import quantize_

        if isinstance(quantization, dict):
            plan = quantization
        else:
            plan = {name: quantization for name in _QUANTIZED_BY_DEFAULT if name in self.components}
        unknown = sorted(set(plan) - set(self.components))
        if unknown:
            raise ValueError(f"quantization names components this pipeline lacks: {unknown}; it has {sorted(self.components)}.")
        for name, spec in plan.items():
            module = getattr(self, name, None)
            if isinstance(module, nn.Module) and spec is not None:
                quantize_(module, spec)
        return self

    # --- saving --------------------------------------------------------------------------------
    def save_pretrained(self, save_directory: str | os.PathLike, safe_serialization: bool = True, variant: str | None = None,
                        **kwargs: Any) -> None:
        """Write model_index.json and each component to its subfolder, in the layout diffusers reads."""
        directory = Path(save_directory)
        if directory.is_file():
            raise ValueError(f"save_pretrained needs a folder, but {directory} is a file.")
        directory.mkdir(parents=True, exist_ok=True)
        index = {"_class_name": type(self).__name__, "_diffusers_version": DIFFUSERS_VERSION}
        for key, value in self.config.items():
            if not key.startswith("_"):
                index[key] = value
        (directory / MODEL_INDEX).write_text(json.dumps(index, indent=2, sort_keys=True) + "\n", encoding="utf-8")
        for name, component in self.components.items():
            if component is None:
                continue
            target = directory / name
            if isinstance(component, nn.Module):
                save_kwargs = {"safe_serialization": safe_serialization}
                if variant is not None:
                    save_kwargs["variant"] = variant
                component.save_pretrained(target, **save_kwargs)
            else:
                component.save_pretrained(target)

    # --- devices and dtypes --------------------------------------------------------------------
    def to(self, *args: Any, **kwargs: Any) -> "DiffusionPipeline":
        """``pipe.to("cuda")``, ``pipe.to(torch.float16)``, ``pipe.to("cuda", torch.float16)`` as in diffusers."""
        device = kwargs.pop("device", kwargs.pop("torch_device", None))
        dtype = kwargs.pop("dtype", kwargs.pop("torch_dtype", None))
        kwargs.pop("silence_dtype_warnings", None)
        if kwargs:
            raise TypeError(f"pipe.to() got unexpected arguments {sorted(kwargs)}; it takes a device and/or a dtype.")
        for arg in args:
            if isinstance(arg, torch.dtype):
                dtype = arg
            elif isinstance(arg, (str, torch.device, int)):
                device = arg
            else:
                raise TypeError(f"pipe.to() takes a device (e.g. 'cuda') and/or a torch dtype, got {arg!r}.")
        if getattr(self, "_offload_device", None) is not None and device is not None:
            raise ValueError(
                "This pipeline uses enable_model_cpu_offload(), which moves each component to the accelerator while "
                "it runs; moving it with .to() would undo that. Call pipe.remove_all_hooks() first."
            )
        if device is not None:
            from ..modeling_utils import resolve_device

            device = resolve_device(device)
        for _, module in self._modules():
            module.to(device=device, dtype=dtype) if dtype is not None else module.to(device)
        return self

    @property
    def device(self) -> torch.device:
        for _, module in self._modules():
            return next(module.parameters()).device
        return torch.device("cpu")

    @property
    def dtype(self) -> torch.dtype:
        for _, module in self._modules():
            return next(p.dtype for p in module.parameters() if p.is_floating_point())
        return torch.float32

    @property
    def _execution_device(self) -> torch.device:
        offload = getattr(self, "_offload_device", None)
        return offload if offload is not None else self.device

    # --- memory options --------------------------------------------------------------------------
    def enable_attention_slicing(self, slice_size: str | int | None = "auto") -> None:
        """Compute attention a few heads at a time: less peak memory at large sizes, slightly slower."""
        for _, module in self._modules():
            if hasattr(module, "set_attention_slice"):
                module.set_attention_slice(slice_size)

    def disable_attention_slicing(self) -> None:
        self.enable_attention_slicing(None)

    def enable_vae_slicing(self) -> None:
        self.vae.enable_slicing()

    def disable_vae_slicing(self) -> None:
        self.vae.disable_slicing()

    def enable_vae_tiling(self) -> None:
        self.vae.enable_tiling()

    def disable_vae_tiling(self) -> None:
        self.vae.disable_tiling()

    def enable_model_cpu_offload(self, gpu_id: int | None = None, device: str | torch.device = "cuda") -> None:
        """Keep components on the CPU and move each to ``device`` only while it runs, one at a time, in
        ``model_cpu_offload_seq`` order: VRAM holds one component instead of all of them."""
        self.remove_all_hooks()
        target = torch.device(device)
        if gpu_id is not None:
            if target.index is not None:
                raise ValueError(f"Pass gpu_id or a device with an index, not both (got gpu_id={gpu_id}, device={device}).")
            target = torch.device(target.type, gpu_id)
        self.to("cpu")
        self._offload_device = target
        self._offload_hooks = []
        for _, module in self._modules():
            self._offload_hooks.append(module.register_forward_pre_hook(self._move_for_forward))
            for method in ("encode", "decode"):  # the VAE runs through these, not forward()
                if callable(getattr(module, method, None)):
                    self._offload_hooks.append(_MethodHook(module, method, self._move_for_forward))

    def _move_for_forward(self, module: nn.Module, args: Any) -> None:
        """Forward pre-hook: this module goes to the accelerator, the one that ran before goes back to the CPU."""
        target = self._offload_device
        active = getattr(self, "_offload_active", None)
        if active is module:
            return
        if active is not None:
            active.to("cpu")
        module.to(target)
        self._offload_active = module

    def maybe_free_model_hooks(self) -> None:
        """After a call with model offload: the last component that ran goes back to the CPU."""
        active = getattr(self, "_offload_active", None)
        if active is not None:
            active.to("cpu")
            self._offload_active = None

    def remove_all_hooks(self) -> None:
        for hook in getattr(self, "_offload_hooks", []):
            hook.remove()
        self._offload_hooks = []
        self._offload_device = None
        self._offload_active = None

    # --- progress ------------------------------------------------------------------------------
    def set_progress_bar_config(self, **kwargs: Any) -> None:
        """tqdm options for the denoising bar (``disable=True`` hides it), as in diffusers."""
        self._progress_bar_config = dict(kwargs)

    @contextmanager
    def progress_bar(self, total: int) -> Iterator[Any]:
        from ..logging import tqdm  # off everywhere after hugkit.logging.disable_progress_bar()

        bar = tqdm(total=total, **getattr(self, "_progress_bar_config", {}))
        try:
            yield bar
        finally:
            bar.close()

    @staticmethod
    def numpy_to_pil(images: Any) -> list:
        from .image_processor import VaeImageProcessor

        return VaeImageProcessor.numpy_to_pil(images)

    def __repr__(self) -> str:
        parts = [f"{name}={type(value).__name__ if value is not None else None}" for name, value in self.components.items()]
        return f"{type(self).__name__}({', '.join(parts)})"


class _MethodHook:
    """Run ``before(module, args)`` ahead of ``module.<method>(...)`` (an instance attribute shadowing the method);
    ``remove()`` restores the method. Forward hooks do not see calls like ``vae.decode``."""

    def __init__(self, module: nn.Module, method: str, before: Any) -> None:
        self.module, self.method = module, method
        bound = getattr(module, method)

        def wrapped(*args: Any, **kwargs: Any) -> Any:
            before(module, args)
            return bound(*args, **kwargs)

        object.__setattr__(module, method, wrapped)

    def remove(self) -> None:
        self.module.__dict__.pop(self.method, None)


def _load_component(
    folder: Path, name: str, entry: Any, dtype: Any, variant: str | None, use_safetensors: bool | None
) -> Any:
    """Load one component from ``folder/name`` with hugkit's class of the name model_index.json gives."""
    from ..modeling_utils import PreTrainedModel
    from .modeling import ModelMixin
    from .schedulers.base import SchedulerMixin

    if not (isinstance(entry, (list, tuple)) and len(entry) == 2):
        raise ValueError(f"model_index.json entry {name!r} should be [library, class name], got {entry!r}.")
    library, class_name = entry
    component_class = find_component_class(class_name)
    if component_class is None:
        raise ValueError(
            f"The pipeline's {name!r} component is {library}.{class_name}, which hugkit cannot load. hugkit loads: "
            f"{', '.join(sorted(COMPONENT_CLASSES))}. Pass {name}=None (if optional) or a component of your own."
        )
    subfolder = folder / name
    if not subfolder.is_dir():
        raise FileNotFoundError(
            f"The pipeline folder {folder} lists a {name!r} component ({class_name}) but has no {name}/ subfolder. "
            "Re-download or re-save the pipeline."
        )
    if isinstance(component_class, type) and issubclass(component_class, SchedulerMixin):
        return component_class.from_pretrained(subfolder)
    if isinstance(component_class, type) and issubclass(component_class, (ModelMixin, PreTrainedModel)):
        kwargs = {"use_safetensors": use_safetensors}
        if dtype is not None:
            kwargs["torch_dtype" if issubclass(component_class, ModelMixin) else "dtype"] = dtype
        try:
            return component_class.from_pretrained(subfolder, variant=variant, **kwargs)
        except FileNotFoundError:
            if variant is None:
                raise
            logger.info("No %s variant of %s; loading its default weights.", variant, name)
            return component_class.from_pretrained(subfolder, **kwargs)
    return component_class.from_pretrained(subfolder)


def _build_converted(component: Any, dtype: Any, device: torch.device) -> Any:
    """A component from a converted single file: built on meta from its config, filled from its state dict."""
    from ..modeling_utils import PreTrainedModel, _no_weight_init
    from .modeling import ModelMixin

    config, state = component
    component_class = find_component_class(config["_class_name"])
    if not isinstance(component_class, type) or not issubclass(component_class, (ModelMixin, PreTrainedModel)):
        return component_class.from_config(config)  # schedulers
    with torch.device("meta"), _no_weight_init():
        if issubclass(component_class, ModelMixin):
            model = component_class.from_config(config)
        else:
            fields = {k: v for k, v in config.items() if not k.startswith("_")}
            model = component_class(component_class.config_class.from_dict(fields))
    if isinstance(model, ModelMixin):
        model.load_state_items(state.items(), dtype=dtype, device=device, source="the single-file checkpoint")
    else:
        model.load_checkpoint([], dtype=dtype or torch.float32, device=device, tensors=state.items())
    return model.eval()


def _single_file_tokenizer(description: dict, config_folder: Any, local_files_only: bool) -> Any:
    """The tokenizer a single file was trained with: from ``config=`` or the HF cache; never guessed."""
    from ..hub import CheckpointNotFoundError, resolve
    from ..tokenization import AutoTokenizer

    if config_folder is not None:
        return AutoTokenizer.from_pretrained(resolve(config_folder, local_files_only=local_files_only), subfolder="tokenizer")
    repo, subfolder = description["pretrained_model_name_or_path"], description.get("subfolder") or ""
    try:
        folder = resolve(repo, subfolder=subfolder, local_files_only=True)
    except CheckpointNotFoundError:
        raise ValueError(
            f"A single-file checkpoint holds no tokenizer, and {repo!r} ({subfolder or 'its root'}) is not in the "
            f"Hugging Face cache. Pass tokenizer=AutoTokenizer.from_pretrained(...) (a CLIP tokenizer padded with "
            f"{description['pad_token']!r}), or config= a diffusers pipeline folder of the same model family."
        ) from None
    return AutoTokenizer.from_pretrained(folder)
