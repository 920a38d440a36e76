"""PreTrainedModel: build on the meta device, fill from the checkpoint in one pass, save back.

Key accounting is strict: every tensor of the base model must come from the checkpoint and every checkpoint
tensor inside the base model must be used. Weights of *other* task heads in a checkpoint (e.g. ``cls.*`` of a
pretraining checkpoint loaded into a classifier) are dropped with an info line; a task head missing from the
checkpoint is freshly initialised with a warning, as transformers does, and pipelines refuse such a model.
"""

from __future__ import annotations

import logging
import os
import re
from contextlib import contextmanager
from pathlib import Path
from typing import Any, ClassVar

import torch
from torch import nn

from .config import PretrainedConfig, pop_hub_kwargs
from .loading import find_weight_files, iter_checkpoint, save_safetensors

logger = logging.getLogger(__name__)

_DTYPE_NAMES = {
    "float32": torch.float32, "fp32": torch.float32, "float": torch.float32,
    "float16": torch.float16, "fp16": torch.float16, "half": torch.float16,
    "bfloat16": torch.bfloat16, "bf16": torch.bfloat16, "float64": torch.float64,
}


def to_torch_dtype(dtype: Any) -> torch.dtype | None:
    """Accept torch dtypes and their usual spellings ("float16", "bf16", "torch.float32")."""
    if dtype is None or isinstance(dtype, torch.dtype):
        return dtype
    if isinstance(dtype, str):
        name = dtype.replace("torch.", "").lower()
        if name in _DTYPE_NAMES:
            return _DTYPE_NAMES[name]
    raise ValueError(
        f"Unsupported dtype {dtype!r}. Expected a torch.dtype, 'auto', or one of {sorted(_DTYPE_NAMES)}."
    )


def resolve_device(device: Any = None, device_map: Any = None) -> torch.device:
    """``device=`` or a single-device ``device_map`` ("cpu", "cuda:0", "auto", 0) as a torch.device."""
    choice = device if device is not None else device_map
    if isinstance(choice, dict):
        targets = set(choice.values())
        if len(targets) != 1:
            raise ValueError(
                f"device_map spreading a model over several devices ({sorted(map(str, targets))}) is not supported yet; "
                "pass one device, e.g. device_map='cpu' or device='cuda'."
            )
        choice = targets.pop()
    if choice is None:
        return torch.device("cpu")
    if choice == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if isinstance(choice, int):
        return torch.device("cpu") if choice < 0 else torch.device("cuda", choice)
    try:
        return torch.device(choice)
    except (RuntimeError, TypeError) as exc:
        raise ValueError(f"Unknown device {choice!r}: expected 'cpu', 'cuda', 'cuda:N', 'mps', 'auto' or an int.") from exc


class PreTrainedModel(nn.Module):
    config_class: ClassVar[type[PretrainedConfig]] = PretrainedConfig
    base_model_prefix: ClassVar[str] = ""
    # {target parameter: source parameter}; tied when config.tie_word_embeddings is true.
    _tied_weights_keys: ClassVar[dict[str, str]] = {}
    # Checkpoint keys dropped silently (old persistent buffers and the like).
    _keys_to_ignore_on_load_unexpected: ClassVar[list[str]] = [r"position_ids$"]
    _keys_to_ignore_on_load_missing: ClassVar[list[str]] = []
    # Base-model weights a checkpoint may lack (BERT's pooler is absent from token-classification checkpoints):
    # newly initialised with a warning, as transformers does, instead of failing the load.
    _keys_optional_on_load: ClassVar[list[str]] = []

    def __init__(self, config: PretrainedConfig) -> None:
        super().__init__()
        self.config = config
        self._newly_initialized_keys: list[str] = []

    # --- basic properties ------------------------------------------------------------------------
    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    @property
    def dtype(self) -> torch.dtype:
        return next(p.dtype for p in self.parameters() if p.is_floating_point())

    @property
    def base_model(self) -> nn.Module:
        return getattr(self, self.base_model_prefix, self)

    def num_parameters(self, only_trainable: bool = False) -> int:
        seen = {id(p): p for p in self.parameters() if p.requires_grad or not only_trainable}
        return sum(p.numel() for p in seen.values())

    def get_input_embeddings(self) -> nn.Module:
        raise NotImplementedError(f"{type(self).__name__} does not expose input embeddings")

    def resize_token_embeddings(
        self, new_num_tokens: int | None = None, pad_to_multiple_of: int | None = None, mean_resizing: bool = True
    ) -> nn.Embedding:
        """transformers' resize_token_embeddings (see hugkit.surgery.embeddings): config.vocab_size follows."""
        from .surgery.embeddings import resize_token_embeddings

        return resize_token_embeddings(self, new_num_tokens, pad_to_multiple_of, mean_resizing)

    def tie_weights(self) -> None:
        if not getattr(self.config, "tie_word_embeddings", True):
            return
        for target, source in self._tied_weights_keys.items():
            owner, name = _owner(self, target)
            if owner is not None and not getattr(owner, "is_quantized", False):  # quantized heads: hugkit.quantization
                setattr(owner, name, self.get_parameter(source))

    # --- loading ---------------------------------------------------------------------------------
    @classmethod
    def from_pretrained(
        cls,
        pretrained_model_name_or_path: str | os.PathLike,
        *model_args: Any,
        config: PretrainedConfig | None = None,
        dtype: Any = None,
        torch_dtype: Any = None,
        device: Any = None,
        device_map: Any = None,
        variant: str | None = None,
        use_safetensors: bool | None = None,
        ignore_mismatched_sizes: bool = False,
        **kwargs: Any,
    ) -> "PreTrainedModel":
        if model_args:
            raise TypeError(f"{cls.__name__}.from_pretrained takes the model path and keyword arguments only.")
        hub_kwargs = pop_hub_kwargs(kwargs)
        for ignored in ("low_cpu_mem_usage", "attn_implementation", "output_loading_info"):
            kwargs.pop(ignored, None)
        gguf_file = kwargs.pop("gguf_file", None)
        quantization = kwargs.pop("quantization", None)  # hugkit.quantization: "int8", "int4", ... or a config
        if gguf_file is not None:  # llama.cpp files: config, tensors and quantized blocks come from the GGUF
            from .gguf.loader import load_gguf_model

            if quantization is not None:  # re-quantize: the GGUF blocks are dequantized first (documented)
                kwargs["gguf_dequantize"] = True
            model = load_gguf_model(
                cls, pretrained_model_name_or_path, gguf_file, config=config, dtype=dtype if dtype is not None else torch_dtype,
                device=device if device is not None else device_map, hub_kwargs=hub_kwargs, **kwargs,
            )
            if quantization is not None:
                from .quantization import quantize_

                quantize_(model, quantization)
            return model
        from .hub import resolve

        folder = resolve(pretrained_model_name_or_path, **hub_kwargs)
        if config is None:
            config = cls.config_class.from_pretrained(folder, **kwargs)
        else:
            config.update(kwargs)
        config._name_or_path = os.fspath(pretrained_model_name_or_path)
        target_dtype = _pick_dtype(dtype if dtype is not None else torch_dtype, config)
        target_device = resolve_device(device, device_map)

        files = find_weight_files(folder, variant=variant, use_safetensors=use_safetensors)
        with torch.device("meta"), _no_weight_init():
            model = cls(config)
            _rebuild_surgery(model)
        on_weight_loaded = None
        if quantization is not None or getattr(config, "quantization_config", None):
            from .quantization.checkpoint import prepare_for_loading

            on_weight_loaded = prepare_for_loading(model, quantization)  # saved structure, or quantize as loaded
        model.load_checkpoint(files, dtype=target_dtype, device=target_device, ignore_mismatched_sizes=ignore_mismatched_sizes,
                              on_weight_loaded=on_weight_loaded)
        if on_weight_loaded is not None:
            on_weight_loaded.finish()
        model.eval()
        return model

    def load_checkpoint(
        self,
        files: list[Path],
        *,
        dtype: torch.dtype | None,
        device: torch.device,
        ignore_mismatched_sizes: bool = False,
        on_weight_loaded: Any = None,
        tensors: Any = None,
    ) -> None:
        """Fill this (meta-device) model from checkpoint files, with strict key accounting.
        ``on_weight_loaded(key)`` runs after each assignment (quantize-on-load). ``tensors`` ((name, tensor)
        pairs, e.g. a converted single-file checkpoint) are used instead of reading ``files``."""
        expected = dict(self.named_parameters(remove_duplicate=False))
        expected.update((name, buf) for name, buf in self.named_buffers() if _is_persistent(self, name))
        tied_targets = set(self._tied_weights_keys) if getattr(self.config, "tie_word_embeddings", True) else set()
        prefix = self.base_model_prefix
        is_head_model = bool(prefix) and hasattr(self, prefix)
        base_children = {name for name, _ in self.base_model.named_children()} | set(self.base_model._parameters)

        loaded: set[str] = set()
        unexpected: list[str] = []
        mismatched: list[str] = []
        kept_layers = getattr(self.config, "num_hidden_layers", None)
        skipped_layers = 0

        def model_key(raw_key: str) -> tuple[str | None, str]:
            """(the model's name for a checkpoint key or None, the key relative to the base model)."""
            key = _rename_legacy(raw_key)
            in_base = key[len(prefix) + 1 :] if prefix and key.startswith(prefix + ".") else key
            candidates = [key, f"{prefix}.{in_base}"] if is_head_model else [in_base]
            return next((c for c in candidates if c in expected), None), in_base

        def beyond_kept_layers(raw_key: str) -> bool:
            """num_hidden_layers was lowered at load: tensors of the dropped layers are never read."""
            nonlocal skipped_layers
            key, in_base = model_key(raw_key)
            if key is None and isinstance(kept_layers, int) and _layer_index(in_base) >= kept_layers:
                skipped_layers += 1
                return True
            return False

        source = iter_checkpoint(files, dtype, skip=beyond_kept_layers) if tensors is None else tensors
        for raw_key, tensor in source:
            key, in_base = model_key(raw_key)
            if key is None:
                if any(re.search(p, raw_key) for p in self._keys_to_ignore_on_load_unexpected):
                    continue
                if in_base.split(".")[0] in base_children:
                    unexpected.append(raw_key)
                else:  # weights of a task head this model does not have (e.g. cls.* in a pretraining checkpoint)
                    logger.info("Dropping checkpoint weight %r: it belongs to a head this model does not have.", raw_key)
                continue
            if key in tied_targets:
                continue  # tied to its source below; the stored copy is identical
            target = expected[key]
            if tuple(tensor.shape) != tuple(target.shape):
                mismatched.append(f"{key}: checkpoint {tuple(tensor.shape)} vs model {tuple(target.shape)}")
                continue
            if tensor.is_floating_point() and dtype is not None and tensor.dtype != dtype:
                tensor = tensor.to(dtype)
            _assign(self, key, tensor.to(device))
            loaded.add(key)
            if on_weight_loaded is not None:
                on_weight_loaded(key)

        if skipped_layers:
            logger.info("Skipped %d checkpoint tensors of layers beyond num_hidden_layers=%d.", skipped_layers, kept_layers)
        missing = [
            k for k in expected
            if k not in loaded and k not in tied_targets
            and not any(re.search(p, k) for p in self._keys_to_ignore_on_load_missing)
        ]
        missing_base = [
            k for k in missing
            if (not is_head_model or k.startswith(prefix + "."))
            and not any(re.search(p, k) for p in self._keys_optional_on_load)
        ]
        head_missing = [k for k in missing if k not in missing_base]
        problems = []
        if mismatched and not ignore_mismatched_sizes:
            problems.append(
                "size mismatches (pass ignore_mismatched_sizes=True to re-initialise them, e.g. a new num_labels):\n    "
                + "\n    ".join(mismatched)
            )
        if unexpected:
            problems.append(f"unexpected keys in the checkpoint: {_short_list(unexpected)}")
        if missing_base:
            problems.append(f"missing keys (not in the checkpoint): {_short_list(missing_base)}")
        if problems:
            names = ", ".join(str(f) for f in files) or "the given tensors"
            raise ValueError(
                f"The checkpoint {names} does not fit {type(self).__name__} ({self.config.model_type}): "
                + "; ".join(problems)
                + ". Check that the checkpoint matches the model class (AutoModel* picks it from config.json)."
            )
        new_keys = head_missing + ([m.split(":")[0] for m in mismatched] if ignore_mismatched_sizes else [])
        if new_keys:
            logger.warning(
                "Some weights of %s were not in the checkpoint and are newly initialised: %s. "
                "Train the model before using it for predictions.",
                type(self).__name__, _short_list(new_keys),
            )
            self._initialize_new(new_keys, dtype or torch.float32, device)
        self._newly_initialized_keys = new_keys
        self.tie_weights()
        self._materialize_leftovers(device)

    def _initialize_new(self, keys: list[str], dtype: torch.dtype, device: torch.device) -> None:
        std = getattr(self.config, "initializer_range", 0.02)
        for key in keys:
            owner, name = _owner(self, key)
            old = getattr(owner, name)
            fresh = torch.empty(old.shape, dtype=dtype, device=device)
            if isinstance(owner, nn.LayerNorm) or name == "bias":
                fresh.fill_(1.0 if name == "weight" else 0.0)
            else:
                fresh.normal_(0.0, std)
            _assign(self, key, fresh)

    def _materialize_leftovers(self, device: torch.device) -> None:
        materialize_leftovers(self, device)

    # --- saving ----------------------------------------------------------------------------------
    def save_pretrained(
        self, save_directory: str | os.PathLike, *, max_shard_size: int | str = "5GB", safe_serialization: bool = True
    ) -> None:
        directory = Path(save_directory)
        directory.mkdir(parents=True, exist_ok=True)
        self.config.architectures = [type(self).__name__]
        self.config.dtype = str(self.dtype).replace("torch.", "")
        state = self.state_dict()
        if any(getattr(m, "is_quantized", False) for m in self.modules()):
            from .quantization.checkpoint import state_for_saving

            state = state_for_saving(self, state)  # quantization_config into config.json; tied blocks once
        self.config.save_pretrained(directory)
        if getattr(self.config, "tie_word_embeddings", True):
            for target in self._tied_weights_keys:
                state.pop(target, None)  # stored once, under its source name
        if safe_serialization:
            save_safetensors(state, directory, max_shard_size=max_shard_size)
        else:
            torch.save({k: v.contiguous() for k, v in state.items()}, directory / "pytorch_model.bin")


_INIT_FUNCTIONS = (
    "normal_", "uniform_", "trunc_normal_", "constant_", "zeros_", "ones_", "eye_", "orthogonal_",
    "kaiming_uniform_", "kaiming_normal_", "xavier_uniform_", "xavier_normal_",
)


@contextmanager
def _no_weight_init():
    """Skip random initialisation while building on meta: every value is overwritten by the checkpoint, and
    ``normal_`` on a meta tensor alone imports torch._dynamo and sympy (seconds and ~70 MB on first use)."""
    saved = {name: getattr(nn.init, name) for name in _INIT_FUNCTIONS}
    for name in _INIT_FUNCTIONS:
        setattr(nn.init, name, _return_tensor)
    try:
        yield
    finally:
        for name, function in saved.items():
            setattr(nn.init, name, function)


def materialize_leftovers(model: nn.Module, device: torch.device) -> None:
    """Non-persistent buffers are built on meta like everything else; modules recreate them in ``_init_buffers``."""
    for module in model.modules():
        init = getattr(module, "_init_buffers", None)
        if init is not None:
            init(device)
    still_meta = [n for n, t in [*model.named_parameters(), *model.named_buffers()] if t.is_meta]
    if still_meta:
        raise RuntimeError(f"Internal error: {type(model).__name__} left tensors on the meta device: {still_meta}")


def _rebuild_surgery(model: nn.Module) -> None:
    """A checkpoint saved after head or uneven FFN pruning: give the empty model its pruned shapes first."""
    config = model.config
    if getattr(config, "pruned_heads", None) or getattr(config, "intermediate_sizes", None):
        from .surgery.rebuild import apply_config_structure

        apply_config_structure(model)


def _return_tensor(tensor: torch.Tensor, *args: Any, **kwargs: Any) -> torch.Tensor:
    return tensor


def _pick_dtype(dtype: Any, config: PretrainedConfig) -> torch.dtype | None:
    """None keeps the model's float32 build; "auto" takes the dtype the checkpoint was saved in."""
    if dtype == "auto":
        saved = getattr(config, "dtype", None)
        return to_torch_dtype(saved) if saved else None
    return to_torch_dtype(dtype) or torch.float32


def _is_persistent(model: nn.Module, name: str) -> bool:
    owner, attr = _owner(model, name)
    return owner is not None and attr not in owner._non_persistent_buffers_set


def _owner(model: nn.Module, key: str) -> tuple[nn.Module | None, str]:
    path, _, name = key.rpartition(".")
    try:
        return (model.get_submodule(path) if path else model), name
    except AttributeError:
        return None, name


def _assign(model: nn.Module, key: str, tensor: torch.Tensor) -> None:
    owner, name = _owner(model, key)
    if name in owner._parameters:
        owner._parameters[name] = nn.Parameter(tensor, requires_grad=tensor.is_floating_point())
    else:
        owner._buffers[name] = tensor


_LAYER_INDEX = re.compile(r"(?:^|\.)(?:layer|layers|h|block|blocks)\.(\d+)\.")


def _layer_index(key: str) -> int:
    """The transformer block a key belongs to (encoder.layer.3.x -> 3), or -1 outside the blocks."""
    match = _LAYER_INDEX.search(key)
    return int(match.group(1)) if match else -1


def _rename_legacy(key: str) -> str:
    """Old TF-era BERT checkpoints call LayerNorm parameters gamma/beta."""
    if key.endswith(".gamma"):
        return key[: -len("gamma")] + "weight"
    if key.endswith(".beta"):
        return key[: -len("beta")] + "bias"
    return key


def _short_list(items: list[str], limit: int = 12) -> str:
    shown = ", ".join(items[:limit])
    return shown + (f", ... ({len(items)} in all)" if len(items) > limit else "")
