"""text-to-speech / text-to-audio: text -> ``{"audio": waveform, "sampling_rate": rate}``, transformers' format.

Supports VITS / MMS-TTS checkpoints (models that make the waveform in one forward pass). ``audio`` is a float32
numpy array of shape (samples,), as transformers returns it for VITS; it plays with
``IPython.display.Audio(out["audio"], rate=out["sampling_rate"])`` and writes with
``soundfile.write("out.wav", out["audio"].T, out["sampling_rate"])``.

As in transformers, model options go in ``forward_params`` (``speaker_id``, ``speaking_rate``; hugkit's VitsModel
also takes ``noise_scale``, ``noise_scale_duration`` and ``generator``) and tokenizer options in
``preprocess_params``; ``generate_kwargs`` are refused (VITS does not generate token by token).

Inputs run in the order given, never sorted by length: VITS samples noise, so under ``torch.manual_seed`` each
text gets the same draws as in transformers' pipeline. The default batch size is 1, as in transformers; with
``batch_size > 1`` each waveform is cut to its own length (transformers returns the padded batch length).

Without ``model=``: facebook/mms-tts-eng (from the local Hugging Face cache, or downloaded when online). transformers'
default, suno/bark-small, is a Bark model, which hugkit does not run.
"""

from __future__ import annotations

from typing import Any

from .base import Pipeline

_OPTIONS = ("forward_params", "generate_kwargs", "preprocess_params", "processor_kwargs")


class TextToAudioPipeline(Pipeline):
    default_batch_size = 1

    def __init__(self, model: Any, tokenizer: Any, *, batch_size: int | None = None, task: str = "",
                 vocoder: Any = None, sampling_rate: int | None = None, **kwargs: Any):
        model_type = getattr(getattr(model, "config", None), "model_type", None)
        if model_type != "vits":
            raise ValueError(
                f"The {task or 'text-to-speech'} pipeline supports VITS / MMS-TTS checkpoints (model_type 'vits'), "
                f"but this model is {model_type!r}. Use a VITS checkpoint such as facebook/mms-tts-eng."
            )
        if vocoder is not None:
            raise ValueError("vocoder= is for spectrogram models such as SpeechT5; a VITS model makes the waveform itself.")
        super().__init__(model, tokenizer, batch_size=batch_size, task=task, **kwargs)
        self.sampling_rate = sampling_rate if sampling_rate is not None else model.config.sampling_rate

    def check_kwargs(self, kwargs: dict[str, Any]) -> dict[str, Any]:
        options = {}
        for name in _OPTIONS:
            if name in kwargs:
                value = kwargs.pop(name)
                if value is not None and not isinstance(value, dict):
                    raise TypeError(f"{name} must be a dict of keyword arguments, got {type(value).__name__}: {value!r}.")
                options[name] = dict(value or {})
        if options.get("generate_kwargs"):
            raise ValueError(
                "generate_kwargs were given, but VITS is a forward-only text-to-audio model (it does not generate); "
                f"pass model options in forward_params instead. generate_kwargs: {sorted(options['generate_kwargs'])}."
            )
        return {**options, **super().check_kwargs(kwargs)}

    def validate_input(self, item: Any) -> Any:
        if not isinstance(item, str):
            raise TypeError(
                f"The {self.task or 'text-to-speech'} pipeline takes a string or a list of strings, "
                f"got {type(item).__name__}: {item!r}."
            )
        if not item.strip():
            raise ValueError(f"The {self.task or 'text-to-speech'} pipeline got an empty text ({item!r}); give it something to say.")
        return item

    def preprocess(self, items: list[Any], options: dict[str, Any]) -> list[dict[str, Any]]:
        tokenizer_options = {**options.get("processor_kwargs", {}), **options.get("preprocess_params", {})}
        features = []
        for text in items:
            ids = self.tokenizer(text, **tokenizer_options)["input_ids"]
            if len(ids) == 0:
                raise ValueError(
                    f"None of the characters of {text!r} are in this model's vocabulary, so there is nothing to say. "
                    "Check the text's language matches the checkpoint (MMS-TTS models are one per language)."
                )
            features.append({"input_ids": list(ids)})
        return features

    def _run_chunk(self, items: list[Any], batch_size: int, options: dict[str, Any]) -> list[Any]:
        # Unlike the base class, no sorting by length: the order of the random draws must be the caller's.
        features = self.preprocess(items, options)
        results: list[Any] = []
        with self.torch.inference_mode():
            for start in range(0, len(features), batch_size):
                batch_features = features[start : start + batch_size]
                outputs = self.forward(self.collate(batch_features), options)
                results.extend(self.postprocess(outputs, i, f, options) for i, f in enumerate(batch_features))
        return results

    def forward(self, batch: dict[str, Any], options: dict[str, Any]) -> Any:
        return self.model(**batch, **{**options.get("forward_params", {}), "return_dict": True})

    def postprocess(self, outputs: Any, index: int, feature: dict[str, Any], options: dict[str, Any]) -> Any:
        length = int(outputs.sequence_lengths[index])
        audio = outputs.waveform[index, :length].to(device="cpu", dtype=self.torch.float32).numpy()
        return {"audio": audio, "sampling_rate": self.sampling_rate}

    def __call__(self, text_inputs: Any, **kwargs: Any) -> Any:
        """Synthesise speech for a text (-> one dict) or a list of texts (-> a list of dicts). For a list the base
        class takes the random int64 transformers' DataLoader takes, so every waveform matches under one seed."""
        return super().__call__(text_inputs, **kwargs)
