"""text-generation, with transformers' call and output formats, plus ``stream=True``.

- a string gives ``[{'generated_text': prompt + continuation}]`` (``return_full_text=False``: the continuation only;
  ``return_tensors=True``: ``[{'generated_token_ids': [...]}]``); a list of strings gives one such list per string;
- a chat (a list of ``{"role", "content"}`` messages) is rendered with the tokenizer's chat template and the
  generation prompt, and ``generated_text`` is the message list with the new assistant message appended (when the
  last message is the assistant's, it is continued instead); a list of chats gives one list per chat;
- generation keyword arguments (``max_new_tokens``, ``do_sample``, ``temperature``, ``stop_strings``, ...) pass
  through to ``generate``; like transformers, when neither the caller nor the model's generation config sets them,
  the pipeline uses ``max_new_tokens=256, do_sample=True, temperature=0.7``;
- ``stream=True`` (one prompt or chat) returns a ``hugkit.generation.streaming.TextStream``: iterate it for text
  chunks of the new text; its ``result`` gives the finish reason and token counts.

Prompts are batched ``batch_size`` at a time, left-padded: longest first, except when sampling, where they run in
the caller's order as in transformers (with the same random draws, so a seed gives transformers' tokens). Lists,
generators and datasets (``hugkit.pipelines.pt_utils.KeyDataset``) are accepted; the last two give lazy results.
"""

from __future__ import annotations

from typing import Any

from .base import Pipeline, as_stream, draw_loader_seed

_DEFAULTS = {"max_new_tokens": 256, "do_sample": True, "temperature": 0.7}
_SAMPLING = {"temperature", "top_k", "top_p", "min_p", "top_h", "typical_p", "epsilon_cutoff", "eta_cutoff"}
# Pipeline options (not generate() arguments) and where they act.
_PIPELINE_OPTIONS = {
    "return_full_text", "return_text", "return_tensors", "return_type", "clean_up_tokenization_spaces", "prefix",
    "stop_sequence", "continue_final_message", "skip_special_tokens", "add_special_tokens", "padding", "truncation",
    "max_length", "tokenizer_encode_kwargs", "tools", "documents", "stream", "handle_long_generation",
}


class TextGenerationPipeline(Pipeline):
    default_batch_size = 1

    # --- options ---------------------------------------------------------------------------------------
    def check_kwargs(self, kwargs: dict[str, Any]) -> dict[str, Any]:
        options = {key: kwargs.pop(key) for key in list(kwargs) if key in _PIPELINE_OPTIONS}
        if options.get("handle_long_generation") is not None:
            raise NotImplementedError("handle_long_generation is not supported by hugkit yet; shorten the prompt.")
        if options.get("max_length") is not None:
            kwargs["max_length"] = options["max_length"]
        stop = options.pop("stop_sequence", None)
        if stop is not None:
            kwargs["stop_strings"] = [stop] if isinstance(stop, str) else list(stop)
        full_text, return_text, tensors = (options.pop(k, None) for k in ("return_full_text", "return_text", "return_tensors"))
        if full_text is not None and return_text is not None:
            raise ValueError("return_text is mutually exclusive with return_full_text.")
        if tensors and (full_text is not None or return_text is not None):
            raise ValueError("return_tensors is mutually exclusive with return_full_text and return_text.")
        if tensors:
            options["return_type"] = "tensors"
        elif full_text is not None:
            options["return_type"] = "full_text" if full_text else "new_text"
        if kwargs:
            self._check_generate_kwargs(kwargs)
            options["generate"] = dict(kwargs)
        return options

    def _check_generate_kwargs(self, kwargs: dict[str, Any]) -> None:
        """Unknown names raise TypeError (naming them) now, not after the prompts are tokenized."""
        from ..generation.loop import resolve_config

        # With the pipeline's own defaults, as the call will run (num_return_sequences=4 relies on do_sample=True).
        trial = self._generate_kwargs(dict(kwargs))
        config = trial.pop("generation_config", None)
        trial = {k: v for k, v in trial.items() if k not in ("tokenizer", "streamer")}
        resolve_config(self.model, config, trial)

    def _merged(self, kwargs: dict[str, Any]) -> dict[str, Any]:
        call = self.check_kwargs(kwargs)
        options = {**self.call_defaults, **call}
        generate = dict(self.call_defaults.get("generate", {}))
        if "generation_config" in call.get("generate", {}):
            generate = {}  # a config passed to the call replaces the init-time generation arguments
        generate.update(call.get("generate", {}))
        options["generate"] = generate
        return options

    def _generate_kwargs(self, user: dict[str, Any]) -> dict[str, Any]:
        """The user's generation arguments plus the pipeline's defaults for what neither they nor the model set."""
        from ..generation.config import DEFAULTS

        base = user.get("generation_config") or self.model.generation_config
        model_set = {k: getattr(base, k) for k in DEFAULTS if getattr(base, k, None) is not None and getattr(base, k) != DEFAULTS[k]}
        set_params = {**model_set, **{k: v for k, v in user.items() if k != "generation_config"}}
        added = {k: v for k, v in _DEFAULTS.items()
                 if k not in set_params and not (k == "max_new_tokens" and "max_length" in set_params)}
        if self.tokenizer.pad_token_id is not None and "pad_token_id" not in set_params:
            added["pad_token_id"] = self.tokenizer.pad_token_id
        if not {**set_params, **added}.get("do_sample"):
            added = {k: v for k, v in added.items() if k not in _SAMPLING}
        kwargs = {**user, **added}
        if kwargs.get("stop_strings") is not None:
            kwargs.setdefault("tokenizer", self.tokenizer)
        return kwargs

    # --- inputs ----------------------------------------------------------------------------------------
    def _classify(self, inputs: Any) -> tuple[str, Any]:
        """("one", item) for a prompt or a chat, ("many", list) for a list of them, ("lazy", iterator)."""
        from ..tokenization.chat_template import check_conversation

        if inputs is None:
            raise ValueError("The text-generation pipeline expects a prompt string, a chat (list of messages), or a list of them; got None.")
        if isinstance(inputs, str):
            return "one", self.validate_input(inputs)
        if isinstance(inputs, (list, tuple)):
            if not inputs:
                return "many", []
            if isinstance(inputs[0], dict):
                return "one", _Chat(check_conversation(inputs, "chat"))
            return "many", [self.validate_input(item) for item in inputs]
        stream = as_stream(inputs)
        if stream is not None:
            return "lazy", (self.validate_input(item) for item in stream)
        raise TypeError(
            "The text-generation pipeline expects a prompt string, a chat (list of {'role', 'content'} dicts), or a "
            f"list of them; found {type(inputs).__name__}: {inputs!r:.80}"
        )

    def validate_input(self, item: Any) -> Any:
        from ..tokenization.chat_template import check_conversation

        if isinstance(item, _Chat):
            return item
        if isinstance(item, str):
            if not item:
                raise ValueError(
                    "The prompt is an empty string: there is nothing to continue. Give some text, or a chat "
                    "(a list of {'role', 'content'} messages)."
                )
            return item
        if isinstance(item, (list, tuple)):
            return _Chat(check_conversation(item, "chat"))
        raise TypeError(
            f"Each input should be a prompt string or a chat (list of messages), found {type(item).__name__}: {item!r:.80}"
        )

    # --- driving ---------------------------------------------------------------------------------------
    def __call__(self, inputs: Any, *, batch_size: int | None = None, **kwargs: Any) -> Any:
        options = self._merged(kwargs)
        options["generate"] = self._generate_kwargs(options["generate"])
        size = batch_size or self.batch_size
        kind, value = self._classify(inputs)
        if options.pop("stream", False):
            if kind != "one":
                raise ValueError("stream=True streams one prompt or one chat at a time; call the pipeline per input.")
            return self._stream(value, options)
        if kind == "one":
            return self._run_chunk([value], size, options)[0]
        if kind == "many":
            if isinstance(inputs, list):
                draw_loader_seed()
            return self._run_chunk(value, size, options) if value else []
        return self._run_lazily(value, size, options)

    def keeps_order(self, options: dict[str, Any]) -> bool:
        generate = options.get("generate", {})
        config = generate.get("generation_config") or self.model.generation_config
        return bool(generate.get("do_sample", getattr(config, "do_sample", None)))

    def _stream(self, item: Any, options: dict[str, Any]):
        from ..generation.streaming import IncrementalDecoder, TextStream

        feature = self.preprocess([item], options)[0]
        import torch

        ids = torch.tensor([feature["input_ids"]], dtype=torch.long, device=self.device)
        generate = dict(options["generate"])
        if generate.get("num_return_sequences") not in (None, 1):
            raise ValueError("stream=True produces one sequence: num_return_sequences must be 1.")
        tokens = self.model.generate_tokens(ids, torch.ones_like(ids), **generate)
        decode_kwargs = {}
        if options.get("clean_up_tokenization_spaces") is not None:
            decode_kwargs["clean_up_tokenization_spaces"] = options["clean_up_tokenization_spaces"]
        decoder = IncrementalDecoder(self.tokenizer, options.get("skip_special_tokens", True), **decode_kwargs)
        return TextStream(tokens, decoder, prompt_tokens=ids.shape[1])

    def preprocess(self, items: list[Any], options: dict[str, Any]) -> list[dict[str, Any]]:
        tokenizer_kwargs = {k: options[k] for k in ("add_special_tokens", "truncation", "padding", "max_length")
                            if options.get(k) is not None}
        tokenizer_kwargs.update(options.get("tokenizer_encode_kwargs") or {})
        tokenizer_kwargs.pop("padding", None)  # the pipeline pads each batch itself
        features = []
        for item in items:
            if isinstance(item, _Chat):
                chat_kwargs = {k: v for k, v in tokenizer_kwargs.items() if k != "add_special_tokens"}
                continue_final = options.get("continue_final_message")
                if continue_final is None:
                    continue_final = item.messages[-1]["role"] == "assistant"
                encoded = self.tokenizer.apply_chat_template(
                    item.messages, add_generation_prompt=not continue_final, continue_final_message=continue_final,
                    return_dict=True, tools=options.get("tools"), documents=options.get("documents"), **chat_kwargs,
                )
            else:
                encoded = self.tokenizer(options.get("prefix", "") + item, **tokenizer_kwargs)
            ids = list(encoded["input_ids"])
            if not ids:
                raise ValueError(
                    f"The prompt {item!r:.60} encodes to no tokens; generation needs at least one. Pass "
                    "add_special_tokens=True (to start from BOS) or a non-empty prompt."
                )
            features.append({"input_ids": ids, "item": item})
        return features

    def collate(self, features: list[dict[str, Any]]) -> dict[str, Any]:
        """Left-pad the batch (a decoder continues from the last position of every row)."""
        torch = self.torch
        longest = max(len(f["input_ids"]) for f in features)
        pad = self.tokenizer.pad_token_id
        if pad is None:
            eos = self.model.generation_config.eos_token_ids() or [0]
            pad = self.model.generation_config.pad_token_id if self.model.generation_config.pad_token_id is not None else eos[0]
        ids = torch.full((len(features), longest), pad, dtype=torch.long)
        mask = torch.zeros((len(features), longest), dtype=torch.long)
        for row, feature in enumerate(features):
            n = len(feature["input_ids"])
            ids[row, longest - n:] = torch.tensor(feature["input_ids"], dtype=torch.long)
            mask[row, longest - n:] = 1
        return {"input_ids": ids.to(self.device), "attention_mask": mask.to(self.device)}

    def forward(self, batch: dict[str, Any], options: dict[str, Any]) -> Any:
        output = self.model.generate(batch["input_ids"], attention_mask=batch["attention_mask"], **options["generate"])
        rows = batch["input_ids"].shape[0]
        sequences = output.reshape(rows, output.shape[0] // rows, output.shape[1]).cpu().tolist()
        return {"sequences": sequences, "prompt_length": batch["input_ids"].shape[1]}

    def postprocess(self, outputs: Any, index: int, feature: dict[str, Any], options: dict[str, Any]) -> Any:
        return_type = options.get("return_type", "full_text")
        item = feature["item"]
        records = []
        for sequence in outputs["sequences"][index]:
            if return_type == "tensors":
                # Like transformers: the whole row, prompt (and its left padding) included.
                records.append({"generated_token_ids": sequence})
                continue
            text = self.tokenizer.decode(
                sequence[outputs["prompt_length"]:], skip_special_tokens=options.get("skip_special_tokens", True),
                clean_up_tokenization_spaces=options.get("clean_up_tokenization_spaces"),
            )
            if return_type == "full_text":
                if isinstance(item, _Chat):
                    continue_final = options.get("continue_final_message")
                    if continue_final is None:
                        continue_final = item.messages[-1]["role"] == "assistant"
                    if continue_final:
                        last = item.messages[-1]
                        text = [*item.messages[:-1], {"role": last["role"], "content": last["content"] + text}]
                    else:
                        text = [*item.messages, {"role": "assistant", "content": text}]
                else:
                    text = item + text
            records.append({"generated_text": text})
        return records


class _Chat:
    """A conversation given to the pipeline (distinguishes a chat from a list of prompts)."""

    __slots__ = ("messages",)

    def __init__(self, messages: list[dict]) -> None:
        self.messages = messages
