"""AutoConfig and AutoModel*: one literal table from config.json's model_type to hugkit classes.

Nothing here imports torch or a model module until a class is actually asked for.
"""

from __future__ import annotations

import importlib
import os
from typing import Any

from .config import CONFIG_NAME, HUB_KWARGS, PretrainedConfig, pop_hub_kwargs, read_json

# model_type -> (module under hugkit.models, config class, {task: model class}).
MODEL_TABLE: dict[str, tuple[str, str, dict[str, str]]] = {
    "bert": ("bert", "BertConfig", {
        "base": "BertModel",
        "sequence-classification": "BertForSequenceClassification",
        "token-classification": "BertForTokenClassification",
        "question-answering": "BertForQuestionAnswering",
        "masked-lm": "BertForMaskedLM",
    }),
    "distilbert": ("distilbert", "DistilBertConfig", {
        "base": "DistilBertModel",
        "sequence-classification": "DistilBertForSequenceClassification",
        "token-classification": "DistilBertForTokenClassification",
        "question-answering": "DistilBertForQuestionAnswering",
        "masked-lm": "DistilBertForMaskedLM",
    }),
    "roberta": ("roberta", "RobertaConfig", {
        "base": "RobertaModel",
        "sequence-classification": "RobertaForSequenceClassification",
        "token-classification": "RobertaForTokenClassification",
        "question-answering": "RobertaForQuestionAnswering",
        "masked-lm": "RobertaForMaskedLM",
    }),
    "xlm-roberta": ("xlm_roberta", "XLMRobertaConfig", {
        "base": "XLMRobertaModel",
        "sequence-classification": "XLMRobertaForSequenceClassification",
        "token-classification": "XLMRobertaForTokenClassification",
        "question-answering": "XLMRobertaForQuestionAnswering",
        "masked-lm": "XLMRobertaForMaskedLM",
    }),
    "gpt2": ("gpt2", "GPT2Config", {"base": "GPT2Model", "causal-lm": "GPT2LMHeadModel"}),
    "llama": ("llama", "LlamaConfig", {"base": "LlamaModel", "causal-lm": "LlamaForCausalLM"}),
    "mistral": ("mistral", "MistralConfig", {"base": "MistralModel", "causal-lm": "MistralForCausalLM"}),
    "qwen2": ("qwen2", "Qwen2Config", {"base": "Qwen2Model", "causal-lm": "Qwen2ForCausalLM"}),
    "qwen3": ("qwen3", "Qwen3Config", {"base": "Qwen3Model", "causal-lm": "Qwen3ForCausalLM"}),
    "bart": ("bart", "BartConfig", {
        "base": "BartModel",
        "sequence-classification": "BartForSequenceClassification",
        "seq2seq-lm": "BartForConditionalGeneration",
    }),
    # T5EncoderModel is loaded by its class, as in transformers (AutoModel gives T5Model).
    "t5": ("t5", "T5Config", {"base": "T5Model", "seq2seq-lm": "T5ForConditionalGeneration"}),
    "mt5": ("mt5", "MT5Config", {"base": "MT5Model", "seq2seq-lm": "MT5ForConditionalGeneration"}),
    "marian": ("marian", "MarianConfig", {"base": "MarianModel", "seq2seq-lm": "MarianMTModel"}),
    "mbart": ("mbart", "MBartConfig", {"base": "MBartModel", "seq2seq-lm": "MBartForConditionalGeneration"}),
    "pegasus": ("pegasus", "PegasusConfig", {"base": "PegasusModel", "seq2seq-lm": "PegasusForConditionalGeneration"}),
    "whisper": ("whisper", "WhisperConfig", {
        "base": "WhisperModel",
        "seq2seq-lm": "WhisperForConditionalGeneration",
        "speech-seq2seq": "WhisperForConditionalGeneration",
    }),
    "clip": ("clip", "CLIPConfig", {"base": "CLIPModel"}),
    "clip_text_model": ("clip", "CLIPTextConfig", {"base": "CLIPTextModel"}),
    "clip_vision_model": ("clip", "CLIPVisionConfig", {"base": "CLIPVisionModel"}),
    # One class synthesises: AutoModel and AutoModelForTextToWaveform both give VitsModel, as in transformers.
    "vits": ("vits", "VitsConfig", {"base": "VitsModel", "text-to-audio": "VitsModel"}),
    "deberta-v2": ("deberta_v2", "DebertaV2Config", {
        "base": "DebertaV2Model",
        "sequence-classification": "DebertaV2ForSequenceClassification",
        "token-classification": "DebertaV2ForTokenClassification",
        "question-answering": "DebertaV2ForQuestionAnswering",
        "masked-lm": "DebertaV2ForMaskedLM",
    }),
}

TASK_DESCRIPTIONS = {
    "base": "base model (hidden states)",
    "sequence-classification": "sequence-classification head",
    "token-classification": "token-classification head",
    "question-answering": "question-answering head",
    "masked-lm": "masked-language-modeling head",
    "causal-lm": "causal language-modeling head (text generation)",
    "seq2seq-lm": "sequence-to-sequence language-modeling head (encoder-decoder)",
    "text-to-audio": "text-to-waveform model (text-to-speech)",
    "speech-seq2seq": "speech-to-text head (encoder-decoder: speech recognition, speech translation)",
}


def _entry(model_type: str | None, source: str) -> tuple[str, str, dict[str, str]]:
    if model_type not in MODEL_TABLE:
        raise ValueError(
            f"{source} has model_type {model_type!r}, which hugkit does not support yet. "
            f"Supported model types: {', '.join(sorted(MODEL_TABLE))}."
        )
    return MODEL_TABLE[model_type]


def _load_class(module_name: str, class_name: str) -> Any:
    return getattr(importlib.import_module(f"hugkit.models.{module_name}"), class_name)


def config_class_for(model_type: str) -> type[PretrainedConfig]:
    module_name, config_name, _ = _entry(model_type, f"The config")
    return _load_class(module_name, config_name)


class AutoConfig:
    @classmethod
    def for_model(cls, model_type: str, **kwargs: Any) -> PretrainedConfig:
        return config_class_for(model_type)(**kwargs)

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path: str | os.PathLike, **kwargs: Any) -> PretrainedConfig:
        hub_kwargs = pop_hub_kwargs(kwargs)
        gguf_file = kwargs.pop("gguf_file", None)
        if gguf_file is not None or os.fspath(pretrained_model_name_or_path).endswith(".gguf"):
            from .gguf.loader import load_config, locate_gguf  # the GGUF metadata is the config

            return load_config(locate_gguf(pretrained_model_name_or_path, gguf_file, hub_kwargs), **kwargs)
        from .hub import resolve

        folder = resolve(pretrained_model_name_or_path, **hub_kwargs)
        config_dict = read_json(folder / CONFIG_NAME, what="model config")
        config_class = _config_class_from_dict(config_dict, folder / CONFIG_NAME)
        return config_class.from_dict(config_dict, **kwargs)


def _config_class_from_dict(config_dict: dict[str, Any], source: Any) -> type[PretrainedConfig]:
    if "model_type" not in config_dict:
        raise ValueError(f"{source} has no 'model_type' field, so the architecture is unknown. Add it (e.g. \"bert\").")
    return config_class_for(config_dict["model_type"])


class _AutoModel:
    task: str = "base"

    @classmethod
    def model_class_for(cls, config: PretrainedConfig) -> Any:
        module_name, _, classes = _entry(config.model_type, f"The checkpoint ({type(config).__name__})")
        if cls.task not in classes:
            available = ", ".join(TASK_DESCRIPTIONS[task] for task in classes)
            raise ValueError(
                f"hugkit has no {TASK_DESCRIPTIONS[cls.task]} for {config.model_type!r} models "
                f"(it has: {available}). Pick a checkpoint made for this task, or another AutoModel class."
            )
        return _load_class(module_name, classes[cls.task])

    @classmethod
    def from_config(cls, config: PretrainedConfig) -> Any:
        return cls.model_class_for(config)(config)

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path: str | os.PathLike, *args: Any, **kwargs: Any) -> Any:
        if kwargs.get("gguf_file") is not None or str(pretrained_model_name_or_path).endswith(".gguf"):
            from .gguf.loader import auto_from_gguf

            return auto_from_gguf(cls, pretrained_model_name_or_path, *args, **kwargs)
        config = kwargs.pop("config", None)
        if config is None:
            hub_kwargs = {k: kwargs[k] for k in HUB_KWARGS if k in kwargs}
            config_kwargs = {k: v for k, v in kwargs.items() if k not in _LOADING_KWARGS and k not in hub_kwargs}
            for key in config_kwargs:
                kwargs.pop(key)
            config = AutoConfig.from_pretrained(pretrained_model_name_or_path, **hub_kwargs, **config_kwargs)
        model_class = cls.model_class_for(config)
        return model_class.from_pretrained(pretrained_model_name_or_path, *args, config=config, **kwargs)


_LOADING_KWARGS = {
    "dtype", "torch_dtype", "device", "device_map", "variant", "use_safetensors", "ignore_mismatched_sizes",
    "low_cpu_mem_usage", "attn_implementation", "force_download", "trust_remote_code", "use_auth_token",
    "output_loading_info", "proxies", "resume_download", "quantization",
}


class AutoModel(_AutoModel):
    task = "base"


class AutoModelForSequenceClassification(_AutoModel):
    task = "sequence-classification"


class AutoModelForTokenClassification(_AutoModel):
    task = "token-classification"


class AutoModelForQuestionAnswering(_AutoModel):
    task = "question-answering"


class AutoModelForMaskedLM(_AutoModel):
    task = "masked-lm"


class AutoModelForCausalLM(_AutoModel):
    task = "causal-lm"


class AutoModelForSeq2SeqLM(_AutoModel):
    task = "seq2seq-lm"


class AutoModelForTextToWaveform(_AutoModel):
    task = "text-to-audio"


class AutoModelForSpeechSeq2Seq(_AutoModel):
    task = "speech-seq2seq"
