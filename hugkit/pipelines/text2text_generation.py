"""text2text-generation, summarization and translation: transformers v4.57's pipelines (v5 removed them), on
hugkit's encoder-decoder ``generate``.

Calls and outputs are v4's:

- a string gives ``[{'summary_text': ...}]`` (``translation_text``, ``generated_text``); one record per returned
  sequence (``num_return_sequences``); ``return_tensors=True`` gives ``{'summary_token_ids': tensor}`` instead;
- a list of strings gives one record per string when each has one sequence, else one list per string;
- generation keyword arguments pass through to ``generate``. Settings are layered as in v4: the call's arguments,
  then the checkpoint's ``generation_config.json`` (and ``task_specific_params`` of the task, e.g. T5's
  ``summarization`` prefix, beams and lengths), then the pipeline's defaults ``max_new_tokens=256, num_beams=4``;
- translation takes ``src_lang``/``tgt_lang`` (multilingual tokenizers such as mBART-50 and NLLB: the source code
  is written by the tokenizer and the target code forced as the first generated token); a task named
  ``translation_en_to_fr`` supplies them, and picks T5's matching prefix;
- v4's length warnings are logged (summarization: ``max_length`` under ``min_length``, or longer than the input;
  translation: input over 0.9 x ``max_length``);
- ``stream=True`` (one input, greedy or sampling) returns a ``TextStream`` of the output text as it decodes.

Beyond v4: inputs longer than the encoder takes are truncated to its limit (v4 fails inside the model), and bad
language codes or task names get an error listing the valid ones.
"""

from __future__ import annotations

import logging
import re
from typing import Any

from .base import Pipeline

logger = logging.getLogger(__name__)

# v4's pipeline defaults, used for what neither the call nor the checkpoint sets.
_PIPELINE_DEFAULTS = {"max_new_tokens": 256, "num_beams": 4}
_TRANSLATION_TASK = re.compile(r"^translation_([A-Za-z0-9-]+)_to_([A-Za-z0-9-]+)$")
_PIPELINE_OPTIONS = ("return_tensors", "return_text", "return_type", "clean_up_tokenization_spaces", "truncation",
                     "stop_sequence", "stream")


class Text2TextGenerationPipeline(Pipeline):
    return_name = "generated"
    default_batch_size = 8

    def __init__(self, model: Any, tokenizer: Any, **kwargs: Any) -> None:
        if not getattr(model.config, "is_encoder_decoder", False):
            model_type = getattr(model.config, "model_type", type(model).__name__)
            raise ValueError(
                f"The {kwargs.get('task') or 'text2text-generation'!r} pipeline needs an encoder-decoder model "
                f"(BART, T5, Marian, mBART, Pegasus); {model_type!r} is decoder-only. For a decoder-only model, use "
                "pipeline('text-generation') with an instruction prompt, e.g. 'Summarize: <text>'."
            )
        self.prefix = getattr(model.config, "prefix", None) or ""
        self._task_name = kwargs.get("task", "")
        super().__init__(model, tokenizer, **kwargs)
        self.generation_config = self._pipeline_generation_config()

    # --- settings --------------------------------------------------------------------------------------
    def _pipeline_generation_config(self):
        """The model's generation config with the pipeline's defaults under it and the task's parameters over it."""
        from ..generation.config import DEFAULTS

        config = self.model.generation_config.copy()
        for key, value in _PIPELINE_DEFAULTS.items():
            if getattr(config, key, None) in (None, DEFAULTS.get(key)):
                setattr(config, key, value)
        # v4: a checkpoint's own max_length (e.g. BART-CNN's 142) wins over the pipeline's max_new_tokens default.
        if config.max_new_tokens == _PIPELINE_DEFAULTS["max_new_tokens"] and config.max_length not in (None, 20):
            config.max_new_tokens = None
        task_params = dict((getattr(self.model.config, "task_specific_params", None) or {}).get(self._task_name) or {})
        if "prefix" in task_params:
            self.prefix = task_params.pop("prefix")
        if task_params:
            config.update(**task_params)
        if config.pad_token_id is None and self.tokenizer.pad_token_id is not None:
            config.pad_token_id = self.tokenizer.pad_token_id
        return config

    def check_kwargs(self, kwargs: dict[str, Any]) -> dict[str, Any]:
        options = {key: kwargs.pop(key) for key in list(kwargs) if key in _PIPELINE_OPTIONS}
        tensors, text, kind = options.pop("return_tensors", None), options.pop("return_text", None), options.pop("return_type", None)
        if kind is None and tensors is not None:
            kind = "tensors" if tensors else "text"
        if kind is None and text is not None:
            kind = "text"
        if kind is not None:
            options["return_type"] = getattr(kind, "name", kind).lower()
            if options["return_type"] not in ("text", "tensors"):
                raise ValueError(f"return_type should be 'text' or 'tensors', found {kind!r}.")
        stop = options.pop("stop_sequence", None)
        if stop is not None:
            ids = self.tokenizer.encode(stop, add_special_tokens=False)
            if not ids:
                raise ValueError(f"stop_sequence {stop!r} encodes to no tokens.")
            if len(ids) > 1:  # v4's rule: only the first token of a multi-token stop sequence stops generation
                logger.warning("stop_sequence %r is %d tokens; generation stops on its first token, as in transformers v4.", stop, len(ids))
            kwargs["eos_token_id"] = ids[0]
        options.update(self.language_options(kwargs))
        if kwargs:
            from ..generation.loop import resolve_config

            trial = {k: v for k, v in kwargs.items() if k not in ("generation_config", "logits_processor", "stopping_criteria")}
            resolve_config(self.model, kwargs.get("generation_config") or self.generation_config, trial)  # names checked now
            options["generate"] = dict(kwargs)
        return options

    def language_options(self, kwargs: dict[str, Any]) -> dict[str, Any]:
        return {}

    # --- inputs ----------------------------------------------------------------------------------------
    def validate_input(self, item: Any) -> Any:
        if not isinstance(item, str):
            raise TypeError(
                f"The {self.task or 'text2text-generation'} pipeline expects a string or a list of strings, found "
                f"{type(item).__name__}: {item!r:.80}"
            )
        if not item.strip():
            raise ValueError(f"The {self.task or 'text2text-generation'} pipeline got an empty text: give it something to work on.")
        return item

    def encode(self, text: str, options: dict[str, Any]) -> dict[str, Any]:
        return self.tokenizer(self.prefix + text, **_truncation(options))

    def preprocess(self, items: list[Any], options: dict[str, Any]) -> list[dict[str, Any]]:
        limit = self.max_input_length()
        features = []
        for item in items:
            ids = list(self.encode(item, options)["input_ids"])
            if len(ids) > limit:
                if options.get("truncation") is False:
                    raise ValueError(
                        f"The input is {len(ids)} tokens, but this model's encoder takes at most {limit}. Shorten it "
                        "or leave truncation on (the default truncates to the limit)."
                    )
                logger.warning("The input is %d tokens, over the encoder's limit of %d: it was truncated.", len(ids), limit)
                # The tokenizer truncates the text and keeps its closing special tokens (</s>, a language code).
                ids = list(self.encode(item, {**options, "max_length": limit})["input_ids"])
            features.append({"input_ids": ids})
        return features

    def max_input_length(self) -> int:
        positions = getattr(self.model.config, "max_position_embeddings", None)
        if getattr(self.model.config, "relative_attention_num_buckets", None):  # T5: no position table
            positions = None
        limit = getattr(self.tokenizer, "model_max_length", None)
        candidates = [x for x in (limit, positions) if isinstance(x, int) and 0 < x < 1_000_000]
        return min(candidates) if candidates else 512

    # --- generation ------------------------------------------------------------------------------------
    def generation_kwargs(self, options: dict[str, Any]) -> dict[str, Any]:
        kwargs = dict(options.get("generate", {}))
        kwargs.setdefault("generation_config", self.generation_config)
        return kwargs

    def keeps_order(self, options: dict[str, Any]) -> bool:
        kwargs = self.generation_kwargs(options)
        return bool(kwargs.get("do_sample", kwargs["generation_config"].do_sample))

    def check_inputs(self, input_length: int, min_length: int, max_length: int) -> None:
        """v4's per-task length warnings (none for plain text2text)."""

    def _lengths(self, kwargs: dict[str, Any]) -> tuple[int, int]:
        config = kwargs["generation_config"]
        min_length = kwargs.get("min_length", config.min_length if config.min_length is not None else 0)
        max_length = kwargs.get("max_length", config.max_length if config.max_length is not None else 20)
        return min_length, max_length

    def forward(self, batch: dict[str, Any], options: dict[str, Any]) -> Any:
        kwargs = self.generation_kwargs(options)
        rows, length = batch["input_ids"].shape
        self.check_inputs(length, *self._lengths(kwargs))
        output = self.model.generate(batch["input_ids"], attention_mask=batch["attention_mask"], **kwargs)
        return output.reshape(rows, output.shape[0] // rows, output.shape[1]).cpu()

    def postprocess(self, outputs: Any, index: int, feature: dict[str, Any], options: dict[str, Any]) -> Any:
        records = []
        for sequence in outputs[index]:
            if options.get("return_type") == "tensors":
                records.append({f"{self.return_name}_token_ids": sequence})
            else:
                text = self.tokenizer.decode(
                    sequence.tolist(), skip_special_tokens=True,
                    clean_up_tokenization_spaces=options.get("clean_up_tokenization_spaces", False),
                )
                records.append({f"{self.return_name}_text": text})
        return records

    # --- driving -----------------------------------------------------------------------------------
    def __call__(self, inputs: Any, *, batch_size: int | None = None, **kwargs: Any) -> Any:
        if kwargs.get("stream"):
            options = {**self.call_defaults, **self.check_kwargs(kwargs)}
            return self._stream(inputs, options)
        result = super().__call__(inputs, batch_size=batch_size, **kwargs)
        # v4: a list of inputs with one sequence each gives a flat list of records.
        if isinstance(inputs, (list, tuple)) and all(len(records) == 1 for records in result):
            return [records[0] for records in result]
        return result

    def _stream(self, item: Any, options: dict[str, Any]):
        from ..generation.streaming import IncrementalDecoder, TextStream

        if not isinstance(item, str):
            raise ValueError("stream=True streams one text at a time; call the pipeline once per input.")
        features = self.preprocess([self.validate_input(item)], options)
        kwargs = self.generation_kwargs(options)
        config = kwargs["generation_config"]
        beams = kwargs.get("num_beams", config.num_beams or 1)
        if beams > 1:
            raise ValueError(
                f"stream=True needs greedy or sampling decoding, but num_beams={beams}: beam search only knows its "
                "best sequence at the end. Pass num_beams=1 (with do_sample=True for sampling) to stream."
            )
        if kwargs.get("num_return_sequences", config.num_return_sequences or 1) != 1:
            raise ValueError("stream=True produces one sequence: num_return_sequences must be 1.")
        batch = self.collate(features)
        self.check_inputs(batch["input_ids"].shape[1], *self._lengths(kwargs))
        tokens = self.model.generate_tokens(batch["input_ids"], batch["attention_mask"], **kwargs)
        decoder = IncrementalDecoder(
            self.tokenizer, True, clean_up_tokenization_spaces=options.get("clean_up_tokenization_spaces", False)
        )
        return TextStream(tokens, decoder, prompt_tokens=batch["input_ids"].shape[1])


class SummarizationPipeline(Text2TextGenerationPipeline):
    return_name = "summary"

    def check_inputs(self, input_length: int, min_length: int, max_length: int) -> None:
        if max_length < min_length:
            logger.warning("Your min_length=%d must be inferior than your max_length=%d.", min_length, max_length)
        if input_length < max_length:
            logger.warning(
                "Your max_length is set to %d, but your input_length is only %d. Since this is a summarization task, "
                "where outputs shorter than the input are typically wanted, you might consider decreasing max_length "
                "manually, e.g. summarizer('...', max_length=%d)", max_length, input_length, input_length // 2,
            )


class TranslationPipeline(Text2TextGenerationPipeline):
    return_name = "translation"

    def __init__(self, model: Any, tokenizer: Any, **kwargs: Any) -> None:
        task = kwargs.get("task", "")
        match = _TRANSLATION_TASK.match(task)
        params = getattr(model.config, "task_specific_params", None) or {}
        if task == "translation":
            # v4: a bare "translation" picks the checkpoint's first translation_XX_to_YY task.
            named = [key for key in params if key.startswith("translation")]
            if named:
                logger.warning('"translation" task was used, instead of "translation_XX_to_YY", defaulting to "%s"', named[0])
                kwargs["task"] = task = named[0]
                match = _TRANSLATION_TASK.match(task)
        self._task_languages = (match.group(1), match.group(2)) if match else (None, None)
        if match and params and any(k.startswith("translation") for k in params) and task not in params \
                and not _is_multilingual(tokenizer):
            known = sorted(k for k in params if k.startswith("translation"))
            raise ValueError(f"This model cannot do {task!r}: its translation tasks are {known}. Use one of those.")
        super().__init__(model, tokenizer, **kwargs)

    def language_options(self, kwargs: dict[str, Any]) -> dict[str, Any]:
        return {name: kwargs.pop(name) for name in ("src_lang", "tgt_lang") if kwargs.get(name) is not None}

    def preprocess(self, items: list[Any], options: dict[str, Any]) -> list[dict[str, Any]]:
        self._resolve_languages(options)
        return super().preprocess(items, options)

    def _resolve_languages(self, options: dict[str, Any]) -> None:
        """For a multilingual tokenizer: check both codes (from the call, or the task's name) and force the target
        code as the first generated token; a single-pair model ignores them, as in v4."""
        if not _is_multilingual(self.tokenizer):
            if options.get("src_lang") or options.get("tgt_lang"):
                logger.info("src_lang/tgt_lang have no effect on a single-pair translation model.")
            options.pop("src_lang", None)
            return
        src = options.get("src_lang") or self._task_languages[0]
        tgt = options.get("tgt_lang") or self._task_languages[1]
        if src is None or tgt is None:
            raise ValueError(
                "This multilingual model needs both src_lang and tgt_lang, e.g. translator(text, src_lang='en_XX', "
                f"tgt_lang='fr_XX'); found src_lang={src!r}, tgt_lang={tgt!r}. Valid codes: {_codes(self.tokenizer)}."
            )
        for name, code in (("src_lang", src), ("tgt_lang", tgt)):
            if code not in _language_codes(self.tokenizer):
                raise ValueError(f"Unknown {name} {code!r} for this model. Valid codes: {_codes(self.tokenizer)}.")
        options["src_lang"] = src
        generate = dict(options.get("generate", {}))  # a fresh dict: the init-time defaults are shared
        generate.setdefault("forced_bos_token_id", self.tokenizer.convert_tokens_to_ids(tgt))
        options["generate"] = generate

    def encode(self, text: str, options: dict[str, Any]) -> dict[str, Any]:
        src = options.get("src_lang")
        if src is None:
            return super().encode(text, options)
        previous = self.tokenizer.src_lang
        self.tokenizer.src_lang = src
        try:
            return self.tokenizer(self.prefix + text, **_truncation(options))
        finally:
            self.tokenizer.src_lang = previous

    def check_inputs(self, input_length: int, min_length: int, max_length: int) -> None:
        if input_length > 0.9 * max_length:
            logger.warning(
                "Your input_length: %d is bigger than 0.9 * max_length: %d. You might consider increasing your "
                "max_length manually, e.g. translator('...', max_length=400)", input_length, max_length,
            )


def _truncation(options: dict[str, Any]) -> dict[str, Any]:
    limit = options.get("max_length")
    return {"truncation": True, "max_length": limit} if limit else {}


def _language_codes(tokenizer: Any) -> list[str]:
    codes = getattr(tokenizer, "language_codes", None)
    if codes is None:
        codes = list(getattr(tokenizer, "lang_code_to_id", {}) or [])
    return list(codes)


def _is_multilingual(tokenizer: Any) -> bool:
    return hasattr(tokenizer, "src_lang") and bool(_language_codes(tokenizer))


def _codes(tokenizer: Any) -> str:
    return ", ".join(_language_codes(tokenizer))
