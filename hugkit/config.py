"""Model configuration: the parsed config.json, with Hugging Face field names.

A config keeps every field it was given, known or not, so ``save_pretrained`` writes back what was read.
Subclasses list their defaults in ``defaults`` and may alias names through ``attribute_map``
(DistilBERT calls ``hidden_size`` ``dim``).
"""

from __future__ import annotations

import copy
import json
import os
from pathlib import Path
from typing import Any, ClassVar

CONFIG_NAME = "config.json"

# Fields every model config understands, with transformers' defaults.
_COMMON_DEFAULTS: dict[str, Any] = {
    "architectures": None,
    "output_hidden_states": False,
    "output_attentions": False,
    "return_dict": True,
    "tie_word_embeddings": True,
    "is_encoder_decoder": False,  # transformers' default: docs read model.config.is_encoder_decoder on any model
    "problem_type": None,
    "pad_token_id": None,
    "bos_token_id": None,
    "eos_token_id": None,
}


class PretrainedConfig:
    model_type: ClassVar[str] = ""
    defaults: ClassVar[dict[str, Any]] = {}
    attribute_map: ClassVar[dict[str, str]] = {}

    def __init__(self, **kwargs: Any) -> None:
        for key, value in {**_COMMON_DEFAULTS, **self.defaults}.items():
            setattr(self, key, copy.deepcopy(value))
        # Labels: id2label wins over num_labels; keys arrive as strings from JSON.
        id2label = kwargs.pop("id2label", None)
        label2id = kwargs.pop("label2id", None)
        num_labels = kwargs.pop("num_labels", None)
        if "torch_dtype" in kwargs and "dtype" not in kwargs:
            kwargs["dtype"] = kwargs.pop("torch_dtype")
        kwargs.pop("torch_dtype", None)
        for key, value in kwargs.items():
            setattr(self, key, value)
        if id2label is not None:
            self.id2label = {int(k): v for k, v in id2label.items()}
        else:
            self.id2label = {i: f"LABEL_{i}" for i in range(num_labels if num_labels is not None else 2)}
        if label2id is not None and set(label2id) == set(self.id2label.values()):
            self.label2id = {k: int(v) for k, v in label2id.items()}
        else:  # derived, so an id2label override never leaves a stale label2id behind
            self.label2id = {v: k for k, v in self.id2label.items()}
        if num_labels is not None and num_labels != len(self.id2label):
            self.num_labels = num_labels

    # attribute_map lets the HF-common names read and write the model's own spelling.
    def __getattr__(self, name: str) -> Any:
        mapped = type(self).attribute_map.get(name)
        if mapped is not None:
            return getattr(self, mapped)
        raise AttributeError(f"{type(self).__name__} has no attribute {name!r}")

    def __setattr__(self, name: str, value: Any) -> None:
        name = type(self).attribute_map.get(name, name)
        super().__setattr__(name, value)

    @property
    def num_labels(self) -> int:
        return len(self.id2label)

    @num_labels.setter
    def num_labels(self, value: int) -> None:
        if not hasattr(self, "id2label") or len(self.id2label) != value:
            self.id2label = {i: f"LABEL_{i}" for i in range(value)}
            self.label2id = {v: k for k, v in self.id2label.items()}

    @property
    def torch_dtype(self) -> Any:
        return getattr(self, "dtype", None)

    # --- serialisation -------------------------------------------------------------------------
    @classmethod
    def from_dict(cls, config_dict: dict[str, Any], **overrides: Any) -> "PretrainedConfig":
        return cls(**{**config_dict, **overrides})

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key, value in self.__dict__.items():
            if key.startswith("_"):
                continue
            out[key] = copy.deepcopy(value)
        out["id2label"] = {str(k): v for k, v in self.id2label.items()}
        out["label2id"] = dict(self.label2id)
        dtype = out.pop("dtype", None)
        if dtype is not None:
            out["dtype"] = str(dtype).replace("torch.", "")
        if self.model_type:
            out["model_type"] = self.model_type
        return out

    def to_json_string(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True) + "\n"

    @classmethod
    def from_json_file(cls, path: str | os.PathLike) -> "PretrainedConfig":
        return cls.from_dict(read_json(path, what="model config"))

    @classmethod
    def from_pretrained(cls, path_or_repo_id: str | os.PathLike, **kwargs: Any) -> "PretrainedConfig":
        hub_kwargs = pop_hub_kwargs(kwargs)
        from .hub import resolve

        folder = resolve(path_or_repo_id, **hub_kwargs)
        config_dict = read_json(folder / CONFIG_NAME, what="model config")
        model_type = config_dict.get("model_type")
        if cls.model_type and model_type and model_type != cls.model_type:
            raise ValueError(
                f"{folder / CONFIG_NAME} describes a {model_type!r} model, but {cls.__name__} is for {cls.model_type!r}. "
                "Use AutoConfig.from_pretrained to pick the right class."
            )
        return cls.from_dict(config_dict, **kwargs)

    def save_pretrained(self, save_directory: str | os.PathLike) -> None:
        directory = Path(save_directory)
        directory.mkdir(parents=True, exist_ok=True)
        (directory / CONFIG_NAME).write_text(self.to_json_string(), encoding="utf-8")

    def update(self, values: dict[str, Any]) -> None:
        for key, value in values.items():
            setattr(self, key, value)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, PretrainedConfig) and self.to_dict() == other.to_dict()

    def __repr__(self) -> str:
        return f"{type(self).__name__} {self.to_json_string()}"


HUB_KWARGS = ("revision", "subfolder", "cache_dir", "local_files_only", "token")


def pop_hub_kwargs(kwargs: dict[str, Any]) -> dict[str, Any]:
    """Take the hub-resolution keyword arguments out of ``kwargs`` (transformers accepts them everywhere)."""
    hub = {key: kwargs.pop(key) for key in HUB_KWARGS if key in kwargs}
    if "use_auth_token" in kwargs:
        hub.setdefault("token", kwargs.pop("use_auth_token"))
    for ignored in ("force_download", "resume_download", "proxies", "trust_remote_code", "_from_pipeline", "use_fast"):
        kwargs.pop(ignored, None)
    return hub


def read_json(path: str | os.PathLike, *, what: str) -> dict[str, Any]:
    """Read a JSON file, with an error that names the file and the problem."""
    path = Path(path)
    if not path.is_file():
        present = sorted(p.name for p in path.parent.iterdir()) if path.parent.is_dir() else []
        raise FileNotFoundError(
            f"The {what} file {path.name!r} is missing from {path.parent}. Files there: {present or 'none'}. "
            "A Hugging Face checkpoint folder needs it: re-download or re-save the checkpoint."
        )
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ValueError(f"The {what} file {path} is not valid JSON ({exc}). Re-download or re-save the checkpoint.") from exc
    if not isinstance(data, dict):
        raise ValueError(f"The {what} file {path} should hold a JSON object, found {type(data).__name__}.")
    return data
