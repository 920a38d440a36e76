"""The token loop: ``generate_tokens`` yields each step's new tokens; ``generate`` and streaming fold over it.

One loop serves decoder-only and encoder-decoder models: ``prepare`` turns a ``generate`` call into a ``Setup`` (the
resolved GenerationConfig, a runner from ``runners.py`` that owns the model state, the logits processors and the
stopping criteria), and ``steps(setup)`` is the greedy/sampling generator over it. Beam search (``num_beams > 1``)
goes to ``beam_search.py`` with the same runner, processors and criteria.

transformers' semantics, step for step: the processors see the ids so far (the prompt, or the decoder prompt with
its start token for an encoder-decoder) and the float32 logits; sampling draws ``torch.multinomial`` on the softmax
of the processed scores (the same random draws as transformers, so a seed gives the same tokens); rows that
finished yield ``pad_token_id`` (or the first EOS id) when an EOS criterion exists; lengths (``max_length``,
``min_length``) count the decoder's tokens, start token included.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Iterator

import torch

from .config import DEFAULTS, TRANSFORMERS_ONLY, GenerationConfig
from .logits import build_processors
from .runners import DecoderOnlyRunner, EncoderDecoderRunner, as_encoder_output

logger = logging.getLogger(__name__)

# generate() arguments that are not GenerationConfig fields: model inputs and the decoding hooks.
MODEL_INPUTS = (
    "input_ids", "attention_mask", "decoder_input_ids", "decoder_attention_mask", "encoder_outputs",
    "input_features", "inputs_embeds",
)
HOOKS = ("logits_processor", "stopping_criteria", "prefix_allowed_tokens_fn", "streamer", "tokenizer")
GENERATE_ARGUMENTS = MODEL_INPUTS + HOOKS + ("generation_config", "compile")
_DEFAULT_NEW_TOKENS = 20  # transformers 5: with no length set anywhere, 20 new tokens (capped at the context)


# --- configuration --------------------------------------------------------------------------------------------------


def _as_generation_config(config: Any) -> GenerationConfig:
    if isinstance(config, GenerationConfig):
        return config.copy()
    if hasattr(config, "to_dict"):  # e.g. a transformers.GenerationConfig
        values = {k: v for k, v in config.to_dict().items() if v is not None and k in DEFAULTS}
        return GenerationConfig(**values)
    raise TypeError(
        f"generation_config should be a hugkit GenerationConfig, found {type(config).__name__}. "
        "Build one with hugkit.GenerationConfig(max_new_tokens=..., ...)."
    )


def resolve_config(model, generation_config: GenerationConfig | None, kwargs: dict[str, Any]) -> GenerationConfig:
    """The settings of one ``generate`` call, layered as transformers does: the keyword arguments over
    ``generation_config`` (when given) over the model's ``generation_config``; unknown names raise TypeError.

    ``kwargs`` may also hold generate()'s other arguments (model inputs, logits_processor, ...): they are skipped.
    """
    model_config = getattr(model, "generation_config", None)
    if model_config is None:
        model_config = GenerationConfig.from_model_config(model.config)
    if generation_config is None:
        config = model_config.copy()
    else:
        config = _as_generation_config(generation_config)
        for name in DEFAULTS:  # fields the given config leaves unset come from the model's
            if getattr(config, name) is None and getattr(model_config, name) is not None:
                setattr(config, name, getattr(model_config, name))
        for name, value in getattr(model_config, "_extra_fields", dict)().items():  # and the checkpoint's own fields
            if not hasattr(config, name):
                setattr(config, name, value)
    settings = {k: v for k, v in kwargs.items() if k not in GENERATE_ARGUMENTS}
    unknown = config.update(**settings)
    if unknown.get("custom_generate") is not None:
        raise NotImplementedError(
            "hugkit's generate does not support custom_generate: a Hub repository's generation code would run here, "
            "and hugkit never runs code from a checkpoint (trust_remote_code); a callable would replace a decoding "
            "loop hugkit does not expose. Write the loop over the model's forward, or iterate "
            "model.generate_tokens(...), which yields each step's tokens with the processors and criteria applied."
        )
    not_yet = sorted(k for k, v in unknown.items() if k in TRANSFORMERS_ONLY and v is not None)
    unknown = sorted(k for k in unknown if k not in TRANSFORMERS_ONLY)
    if not_yet:
        raise NotImplementedError(
            f"hugkit's generate does not support {', '.join(not_yet)} yet (transformers does). Supported: the "
            "GenerationConfig fields of greedy, sampling and beam decoding, logits_processor, stopping_criteria, "
            "prefix_allowed_tokens_fn, streamer."
        )
    if unknown:
        raise TypeError(
            f"generate() got unexpected keyword argument(s): {', '.join(unknown)}. "
            "Pass GenerationConfig fields (max_new_tokens, do_sample, temperature, top_k, top_p, num_beams, ...), "
            "the model inputs (input_ids, attention_mask; decoder_input_ids, encoder_outputs for an "
            "encoder-decoder), logits_processor, stopping_criteria or generation_config."
        )
    config.validate()
    config.check_supported()
    return config


# --- inputs -----------------------------------------------------------------------------------------------------------


def _check_ids(input_ids: Any, name: str = "input_ids") -> torch.Tensor:
    if not isinstance(input_ids, torch.Tensor) and hasattr(input_ids, "keys") and "input_ids" in input_ids.keys():
        raise TypeError(
            f"{name} should be a tensor of token ids, found the tokenizer's whole output ({type(input_ids).__name__} "
            f"with {sorted(input_ids.keys())}). Unpack it: model.generate(**inputs), or pass inputs['input_ids']."
        )
    if not isinstance(input_ids, torch.Tensor):
        raise TypeError(
            f"{name} should be a torch.LongTensor of token ids, found {type(input_ids).__name__}. "
            "Call the tokenizer with return_tensors='pt'."
        )
    if input_ids.dim() == 1:
        input_ids = input_ids[None]
    if input_ids.dim() != 2 or input_ids.dtype not in (torch.int64, torch.int32):
        raise ValueError(
            f"{name} should be integer token ids of shape (batch, length), found {input_ids.dtype} "
            f"of shape {tuple(input_ids.shape)}."
        )
    return input_ids.long()


def _check_mask(mask: Any, ids: torch.Tensor, name: str, ids_name: str) -> torch.Tensor:
    if not isinstance(mask, torch.Tensor):
        mask = torch.as_tensor(mask)
    if mask.dim() == 1:
        mask = mask[None]
    if tuple(mask.shape) != tuple(ids.shape):
        raise ValueError(f"{name} shape {tuple(mask.shape)} does not match {ids_name} shape {tuple(ids.shape)}.")
    return mask.to(device=ids.device, dtype=torch.long)


def _check_prompt(input_ids: Any, attention_mask: Any, config: GenerationConfig) -> tuple[torch.Tensor, torch.Tensor]:
    """A decoder-only prompt and its mask (inferred from pad tokens as transformers does); left padding only."""
    input_ids = _check_ids(input_ids)
    if input_ids.shape[0] == 0 or input_ids.shape[1] == 0:
        raise ValueError(
            f"The prompt is empty (input_ids shape {tuple(input_ids.shape)}). Generation needs at least one token "
            "per sequence: start from the BOS token (tokenizer.bos_token_id) if there is no text."
        )
    if attention_mask is None:
        # transformers' rule: padding is recognisable when pad_token_id occurs and is not also an EOS token.
        pad, eos_ids = config.pad_token_id, config.eos_token_ids()
        if pad is not None and pad not in eos_ids and bool((input_ids == pad).any()):
            attention_mask = (input_ids != pad).long()
        else:
            attention_mask = torch.ones_like(input_ids)
    attention_mask = _check_mask(attention_mask, input_ids, "attention_mask", "input_ids")
    if not bool(attention_mask[:, -1].all()):
        raise ValueError(
            "The prompts are right-padded (attention_mask ends in 0), but a decoder-only model continues the last "
            "position: pad on the left. Set tokenizer.padding_side = 'left' before tokenizing the batch."
        )
    return input_ids, attention_mask


def _decoder_start_ids(model, config: GenerationConfig, batch: int, device: torch.device) -> torch.Tensor:
    """(batch, 1) start tokens: ``decoder_start_token_id`` of the generation config, else its ``bos_token_id``
    (transformers' order); where neither is set, the model config's ``decoder_start_token_id``/``bos_token_id``."""
    candidates = (
        ("generation_config.decoder_start_token_id", config.decoder_start_token_id),
        ("generation_config.bos_token_id", config.bos_token_id),
        ("config.decoder_start_token_id", getattr(model.config, "decoder_start_token_id", None)),
        ("config.bos_token_id", getattr(model.config, "bos_token_id", None)),
    )
    for name, start in candidates:
        if start is None:
            continue
        if isinstance(start, int):
            return torch.full((batch, 1), start, dtype=torch.long, device=device)
        start = torch.as_tensor(start, dtype=torch.long, device=device).reshape(-1)
        if start.shape[0] != batch:
            raise ValueError(
                f"{name} lists {start.shape[0]} start tokens (one per input), but the batch has {batch} inputs."
            )
        return start[:, None]
    raise ValueError(
        "An encoder-decoder model needs a decoder start token, but neither the generation config nor the model "
        "config sets decoder_start_token_id or bos_token_id. Pass generate(..., decoder_start_token_id=<id>) (the "
        "model card names it; BART uses </s>, T5 the pad token)."
    )


def _decoder_prompt(model, config, decoder_input_ids, decoder_attention_mask, batch, device):
    """transformers' ``_prepare_decoder_input_ids_for_generation``: the start token alone, or the caller's decoder
    ids with the start token put in front when no row begins with it (Whisper and Donut prompts are taken as they
    are)."""
    start = _decoder_start_ids(model, config, batch, device)
    if decoder_input_ids is None:
        return start, None
    decoder_input_ids = _check_ids(decoder_input_ids, "decoder_input_ids").to(device)
    if decoder_input_ids.shape[0] != batch:
        if decoder_input_ids.shape[0] == 1:
            decoder_input_ids = decoder_input_ids.expand(batch, -1)
        else:
            raise ValueError(
                f"decoder_input_ids has {decoder_input_ids.shape[0]} rows, but the batch has {batch} inputs: give "
                "one decoder prompt per input (or one for all)."
            )
    if decoder_attention_mask is not None:
        decoder_attention_mask = _check_mask(
            decoder_attention_mask, decoder_input_ids, "decoder_attention_mask", "decoder_input_ids"
        )
    model_type = getattr(model.config, "model_type", "")
    verbatim = model_type == "whisper" or "donut" in type(model).__name__.lower()
    if decoder_input_ids.shape[1] == 0:
        decoder_input_ids = start
        decoder_attention_mask = None
    elif not verbatim and bool((decoder_input_ids[:, 0] != start[:, 0]).all()):
        decoder_input_ids = torch.cat([start, decoder_input_ids], dim=-1)
        if decoder_attention_mask is not None:
            decoder_attention_mask = torch.cat([torch.ones_like(decoder_attention_mask[:, :1]), decoder_attention_mask], -1)
    return decoder_input_ids, decoder_attention_mask


# --- lengths --------------------------------------------------------------------------------------------------------


def _context(model) -> int | None:
    """How many positions the (decoder's) position embeddings cover, when the config says."""
    config = model.config
    if getattr(config, "is_encoder_decoder", False):
        for name in ("max_target_positions", "max_position_embeddings"):
            value = getattr(config, name, None)
            if isinstance(value, int):
                return value
        return None
    value = getattr(config, "max_position_embeddings", None)
    return value if isinstance(value, int) else None


def plan_lengths(model, config: GenerationConfig, prompt_length: int, explicit: dict[str, Any] | None = None) -> int:
    """How many new tokens at most, with transformers' rules (``_prepare_generated_length``); raises ValueError for
    a prompt that leaves no room. Writes the final ``max_length`` and ``min_length`` (prompt included) into
    ``config`` (a private copy), which is what the processors and stopping criteria then read.

    ``explicit``: the call's keyword arguments; a ``min_length``/``min_new_tokens`` given there that cannot fit under
    the maximum is an error (from a checkpoint's settings it is not: generation stops at the maximum, as in
    transformers).
    """
    context = _context(model)
    encoder_decoder = getattr(model.config, "is_encoder_decoder", False)
    what = "decoder prompt (decoder_input_ids with the start token)" if encoder_decoder else "prompt"
    if context is not None and prompt_length > context:
        raise ValueError(
            f"The {what} has {prompt_length} tokens, but this model's context is {context} tokens "
            "(max_position_embeddings). Shorten the prompt, e.g. tokenizer(..., truncation=True, "
            f"max_length={context}) (keeps the start) or keep only its last tokens."
        )
    if config.max_new_tokens is not None:
        max_length = prompt_length + config.max_new_tokens
    elif config.max_length is None:  # set nowhere: 20 new tokens, within the context
        max_length = prompt_length + _DEFAULT_NEW_TOKENS
        if context is not None:
            max_length = min(max_length, context)
    else:
        max_length = config.max_length
    if prompt_length >= max_length:
        raise ValueError(
            f"The {what} has {prompt_length} tokens, but max_length is {max_length}, which leaves no room to "
            "generate. Set max_new_tokens (tokens to add) instead of max_length."
        )
    max_new = max_length - prompt_length
    if context is not None and max_length > context:
        if getattr(model, "has_learned_positions", False):
            raise ValueError(
                f"The {what} ({prompt_length} tokens) plus max_new_tokens ({max_new}) exceeds this model's context "
                f"of {context} tokens (learned position embeddings cannot go further). Lower max_new_tokens to at "
                f"most {context - prompt_length}."
            )
        logger.warning(
            "Generating up to %d tokens, past this model's context of %d (max_position_embeddings): "
            "quality usually degrades beyond it.", max_length, context,
        )
    min_length = config.get("min_length")
    if config.min_new_tokens is not None:
        min_length = prompt_length + config.min_new_tokens
    explicit = explicit or {}
    if min_length > max_length:
        asked = [f"{name}={explicit[name]}" for name in ("min_length", "min_new_tokens") if explicit.get(name) is not None]
        if asked:
            raise ValueError(
                f"{' and '.join(asked)} asks for at least {min_length} tokens (prompt included), more than max_length "
                f"{max_length} allows. Lower the minimum or raise max_new_tokens."
            )
        logger.info("min_length %d is over max_length %d: generation stops at max_length.", min_length, max_length)
    config.max_length = max_length
    config.min_length = min_length
    return max_new


# --- setup --------------------------------------------------------------------------------------------------------


@dataclass
class Setup:
    """Everything one ``generate`` call decodes with; built by ``prepare`` (which raises for bad input)."""

    model: Any
    config: GenerationConfig
    runner: Any  # DecoderOnlyRunner | EncoderDecoderRunner
    processors: Any  # LogitsProcessorList
    criteria: Any  # StoppingCriteriaList
    max_new: int
    batch_size: int  # inputs, before expansion to beams / returned sequences
    is_encoder_decoder: bool
    encoder_outputs: Any = None
    prompt_tokens: int = 0  # the input length (the encoder's for an encoder-decoder)

    @property
    def num_beams(self) -> int:
        return self.config.get("num_beams")


def _beam_search():
    try:
        from .beam_search import beam_search
    except ImportError:
        return None
    return beam_search


def prepare(
    model,
    inputs: Any = None,
    generation_config: GenerationConfig | None = None,
    *,
    compile: bool = False,
    tokenizer: Any = None,
    logits_processor: Any = None,
    stopping_criteria: Any = None,
    prefix_allowed_tokens_fn: Any = None,
    **kwargs: Any,
) -> Setup:
    """Check one ``generate`` call and set it up: config, inputs, runner (the encoder runs here), processors,
    stopping criteria. ``inputs`` is the model's main input (``input_ids``; ``input_features`` for speech models);
    the other model inputs come by name in ``kwargs`` with the GenerationConfig fields."""
    from .stopping import build_stopping_criteria

    explicit = {k: v for k, v in kwargs.items() if k not in MODEL_INPUTS}
    model_inputs = {k: kwargs.pop(k) for k in list(kwargs) if k in MODEL_INPUTS}
    config = resolve_config(model, generation_config, kwargs)
    is_encoder_decoder = bool(getattr(model.config, "is_encoder_decoder", False))
    main_input = getattr(model, "main_input_name", "input_ids")
    if inputs is not None:
        if model_inputs.get(main_input) is not None:
            raise ValueError(f"Pass the {main_input} once: either as the first argument or as {main_input}=, not both.")
        model_inputs[main_input] = inputs
    beams = config.get("num_beams")
    copies = config.get("num_return_sequences")
    expand = max(beams, copies)
    if beams > 1 and _beam_search() is None:
        raise NotImplementedError(f"num_beams={beams}: beam search is not available in this hugkit build yet.")

    encoder_outputs = None
    encoder_input_ids = None
    if is_encoder_decoder:
        runner_args, encoder_input_ids, batch, prompt_tokens = _encoder_decoder_inputs(model, config, model_inputs)
        decoder_ids, decoder_mask = runner_args.pop("decoder_input_ids"), runner_args.pop("decoder_attention_mask")
        prompt_length = decoder_ids.shape[1]
        mask_for_processors = decoder_mask
    else:
        if model_inputs.get("inputs_embeds") is not None:
            raise NotImplementedError(
                "generate() from inputs_embeds is not supported for decoder-only models yet: pass input_ids."
            )
        extra = sorted(k for k, v in model_inputs.items() if v is not None and k not in ("input_ids", "attention_mask"))
        if extra:
            raise ValueError(
                f"{', '.join(extra)} are inputs of encoder-decoder models; this {type(model).__name__} is "
                "decoder-only: pass input_ids (and attention_mask)."
            )
        if model_inputs.get("input_ids") is None:
            raise ValueError(
                "generate() needs a prompt: input_ids of shape (batch, length), e.g. from tokenizer(..., "
                "return_tensors='pt')."
            )
        input_ids, attention_mask = _check_prompt(model_inputs["input_ids"], model_inputs.get("attention_mask"), config)
        batch, prompt_length = input_ids.shape
        prompt_tokens = prompt_length
        mask_for_processors = attention_mask

    max_new = plan_lengths(model, config, prompt_length, explicit)
    if is_encoder_decoder:
        runner = EncoderDecoderRunner(
            model, runner_args, decoder_ids, max_new, expand=expand, compile=compile,
            decoder_attention_mask=decoder_mask,
        )
        encoder_outputs = runner.encoder_outputs
    else:
        runner = _decoder_only_runner(model, input_ids, attention_mask, max_new, expand, compile)
    device = runner.prompt.device
    if mask_for_processors is not None and expand > 1:
        mask_for_processors = mask_for_processors.repeat_interleave(expand, dim=0)
    if encoder_input_ids is not None and expand > 1:
        encoder_input_ids = encoder_input_ids.repeat_interleave(expand, dim=0)
    processors = build_processors(
        config, prompt_length, device, is_encoder_decoder=is_encoder_decoder, user_processors=logits_processor,
        attention_mask=mask_for_processors, max_length=config.max_length, encoder_input_ids=encoder_input_ids,
        prefix_allowed_tokens_fn=prefix_allowed_tokens_fn,
    )
    criteria = build_stopping_criteria(
        config, stopping_criteria, max_length=config.max_length, tokenizer=tokenizer,
    )
    if any(hasattr(c, "eos_token_id") for c in criteria) and _pad_id(config) is None:
        raise ValueError(
            "A stopping criterion has an eos_token_id, so finished rows are padded, but neither pad_token_id nor "
            "eos_token_id is set. Pass pad_token_id=<id>."
        )
    return Setup(
        model=model, config=config, runner=runner, processors=processors, criteria=criteria, max_new=max_new,
        batch_size=batch, is_encoder_decoder=is_encoder_decoder, encoder_outputs=encoder_outputs,
        prompt_tokens=prompt_tokens,
    )


def _decoder_only_runner(model, input_ids, attention_mask, max_new: int, expand: int, compile: bool):
    """The native decode step (one compiled call per token, bit-identical logits; it falls back to the Python
    modules by itself where the model or machine does not allow it) unless ``compile=True`` asks for
    torch.compile of the Python step."""
    if compile:
        return DecoderOnlyRunner(model, input_ids, attention_mask, max_new, expand=expand, compile=True)
    from .native_runner import NativeDecoderRunner

    return NativeDecoderRunner(model, input_ids, attention_mask, max_new, expand=expand, wait_for_build=False)


def _encoder_decoder_inputs(model, config, model_inputs: dict[str, Any]):
    """(runner arguments, encoder input ids for the processors or None, batch size, input length)."""
    attention_mask = model_inputs.get("attention_mask")
    encoder_outputs = model_inputs.get("encoder_outputs")
    sources = [name for name in ("input_ids", "input_features", "inputs_embeds") if model_inputs.get(name) is not None]
    main_input = getattr(model, "main_input_name", "input_ids")
    decoder_input_ids = model_inputs.get("decoder_input_ids")
    # transformers also takes decoder ids as input_ids when the encoder reads something else (Whisper's features)
    if main_input != "input_ids" and "input_ids" in sources:
        if decoder_input_ids is not None:
            raise ValueError("Pass the decoder prompt once: as decoder_input_ids or as input_ids, not both.")
        decoder_input_ids = model_inputs["input_ids"]
        sources.remove("input_ids")
    if encoder_outputs is None and not sources:
        raise ValueError(
            f"{type(model).__name__} is an encoder-decoder: generate() needs the encoder's input, e.g. "
            f"model.generate(**tokenizer(text, return_tensors='pt')) (input_ids and attention_mask), "
            f"{main_input}=..., or encoder_outputs=model.get_encoder()(...)."
        )
    if len(sources) > 1:
        raise ValueError(f"Pass one encoder input, found {', '.join(sources)}.")
    encoder_input_ids = None
    runner_args: dict[str, Any] = {}
    if encoder_outputs is not None:
        encoder_outputs = as_encoder_output(encoder_outputs)
        batch, length = encoder_outputs.last_hidden_state.shape[:2]
        device = encoder_outputs.last_hidden_state.device
        runner_args["encoder_outputs"] = encoder_outputs
        if "input_ids" in sources:  # kept for encoder_repetition_penalty / encoder_no_repeat_ngram_size
            encoder_input_ids = _check_ids(model_inputs["input_ids"])
    else:
        name = sources[0]
        value = model_inputs[name]
        if name == "input_ids":
            value = encoder_input_ids = _check_ids(value)
            if value.shape[0] == 0 or value.shape[1] == 0:
                raise ValueError(f"input_ids is empty (shape {tuple(value.shape)}): give the encoder some text.")
        elif not isinstance(value, torch.Tensor):
            raise TypeError(f"{name} should be a torch.Tensor, found {type(value).__name__}.")
        batch, length = value.shape[0], value.shape[1]
        device = value.device
        runner_args[name] = value
    if attention_mask is not None:
        attention_mask = torch.as_tensor(attention_mask)
        if attention_mask.dim() == 1:
            attention_mask = attention_mask[None]
        if attention_mask.shape[0] != batch:
            raise ValueError(f"attention_mask has {attention_mask.shape[0]} rows, but the batch has {batch} inputs.")
        runner_args["attention_mask"] = attention_mask.to(device=device, dtype=torch.long)
    decoder_ids, decoder_mask = _decoder_prompt(
        model, config, decoder_input_ids, model_inputs.get("decoder_attention_mask"), batch, device
    )
    runner_args["decoder_input_ids"] = decoder_ids
    runner_args["decoder_attention_mask"] = decoder_mask
    return runner_args, encoder_input_ids, batch, int(length)


def _pad_id(config: GenerationConfig) -> int | None:
    if config.pad_token_id is not None:
        return config.pad_token_id
    eos = config.eos_token_ids()
    return eos[0] if eos else None


# --- the greedy / sampling loop -------------------------------------------------------------------------------------

_LENGTH, _STOP, _STOP_STRING = 0, 1, 2
_REASONS = ("length", "stop", "stop_string")


@dataclass
class Record:
    """What ``steps`` keeps per step for ``return_dict_in_generate``: processed scores and/or raw logits."""

    scores: list | None = None
    logits: list | None = None

    @classmethod
    def for_config(cls, config: GenerationConfig) -> "Record | None":
        if not config.get("return_dict_in_generate"):
            return None
        return cls([] if config.get("output_scores") else None, [] if config.get("output_logits") else None)


def _precedence(criterion: Any) -> int:
    """Which finish reason a row gets when several criteria end it at once: EOS, stop string, the caller's, time."""
    reason = _criterion_reason(criterion)
    if reason == _STOP:
        return 0 if hasattr(criterion, "eos_token_id") else 2
    return 1 if reason == _STOP_STRING else 3


def _criterion_reason(criterion: Any) -> int:
    from .stopping import EosTokenCriteria, MaxLengthCriteria, MaxTimeCriteria, StopStringCriteria

    if isinstance(criterion, EosTokenCriteria) or hasattr(criterion, "eos_token_id"):
        return _STOP
    if isinstance(criterion, StopStringCriteria):
        return _STOP_STRING
    if isinstance(criterion, (MaxLengthCriteria, MaxTimeCriteria)):
        return _LENGTH
    return _STOP  # the caller's own criterion


def steps(setup: Setup, record: Record | None = None) -> Iterator[torch.Tensor]:
    """Yield the next token of every row, ``(rows,)``, step by step (greedy or sampling).

    Returns (``StopIteration.value``) ``{"finish_reasons": [...], "new_tokens": [...]}`` per row: "stop" (an EOS
    token or a stopping criterion of the caller's), "stop_string", "length" (max length or max_time).
    """
    config, runner = setup.config, setup.runner
    sampling = config.get("do_sample")
    prompt = runner.prompt
    rows, prompt_length = prompt.shape
    device = prompt.device
    criteria = setup.criteria
    pads = any(hasattr(c, "eos_token_id") for c in criteria)  # transformers pads finished rows only then
    pad_id = _pad_id(config)
    # Criteria that can end a row before the last step, in order of precedence for the finish reason.
    from .stopping import MaxLengthCriteria

    # (a max-length criterion at the loop's own limit fires at the last step, which ends the loop anyway)
    early = sorted(
        (c for c in criteria if not (isinstance(c, MaxLengthCriteria) and c.max_length >= config.max_length)),
        key=_precedence,
    )
    user_scores = record is not None and record.scores is not None

    sequence = torch.empty(rows, prompt_length + setup.max_new, dtype=torch.long, device=device)
    sequence[:, :prompt_length] = prompt
    unfinished = torch.ones(rows, dtype=torch.bool, device=device)
    reason = torch.zeros(rows, dtype=torch.int8, device=device)
    produced = torch.zeros(rows, dtype=torch.long, device=device)

    logits = runner.first_logits()
    for step in range(setup.max_new):
        length = prompt_length + step
        scores = setup.processors(sequence[:, :length], logits)
        if record is not None:
            if record.scores is not None:
                record.scores.append(scores)
            if record.logits is not None:
                record.logits.append(logits)
        if sampling:
            tokens = torch.multinomial(torch.softmax(scores, dim=-1), num_samples=1).squeeze(1)
        else:
            tokens = torch.argmax(scores, dim=-1)
        if pads:
            tokens = torch.where(unfinished, tokens, pad_id)
        sequence[:, length] = tokens
        produced += unfinished
        yield tokens
        if early:
            ids = sequence[:, : length + 1]
            so_far = tuple(record.scores) if user_scores else None
            for criterion in early:
                done = criterion(ids, so_far)
                if not isinstance(done, torch.Tensor):
                    done = torch.as_tensor(done, dtype=torch.bool)
                hit = unfinished & done.to(device=device, dtype=torch.bool)
                reason.masked_fill_(hit, _criterion_reason(criterion))
                unfinished &= ~hit
            if not bool(unfinished.any()):
                break
        if step + 1 == setup.max_new:
            break
        logits = runner.step(tokens)
    return {"finish_reasons": [_REASONS[int(r)] for r in reason.tolist()], "new_tokens": produced.tolist()}


# --- public entry points -------------------------------------------------------------------------------------------


def generate_tokens(
    model,
    input_ids: torch.Tensor | None = None,
    attention_mask: torch.Tensor | None = None,
    generation_config: GenerationConfig | None = None,
    *,
    compile: bool = False,
    tokenizer: Any = None,
    **kwargs: Any,
) -> Iterator[torch.Tensor]:
    """Yield the next token of every row, ``(batch * num_return_sequences,)`` LongTensor, one step at a time.

    ``input_ids`` is the prompt of a decoder-only model, or the encoder's input of an encoder-decoder (which may
    instead take ``input_features=``, ``encoder_outputs=``, and a decoder prompt ``decoder_input_ids=``); the
    tokens yielded are the new ones only. Rows that finished (an EOS token, a stop string, a stopping criterion)
    yield ``pad_token_id`` from then on; the generator stops when every row has finished or the length limit is
    reached. Breaking out of the loop drops the cache with the generator. Keyword arguments are GenerationConfig
    fields, layered over ``generation_config`` (or the model's), and ``logits_processor``/``stopping_criteria``
    lists; ``tokenizer`` is needed for ``stop_strings``. Setup errors raise here, at the call.

    When it is exhausted, the generator returns (``StopIteration.value``) a dict with per-row ``finish_reasons``
    ("stop": an EOS token or a caller's stopping criterion, "stop_string", "length": max length or max_time) and
    ``new_tokens`` (tokens generated up to and including the one that finished the row).
    """
    setup = prepare(
        model, input_ids, generation_config, attention_mask=attention_mask, compile=compile, tokenizer=tokenizer,
        **kwargs,
    )
    if setup.num_beams > 1:
        raise ValueError(
            f"num_beams={setup.num_beams}: beam search knows its best sequences only at the end, so it cannot yield "
            "tokens step by step. Use generate() for beam search, or num_beams=1 to stream."
        )
    return steps(setup)


def generate(
    model,
    inputs: torch.Tensor | None = None,
    attention_mask: torch.Tensor | None = None,
    generation_config: GenerationConfig | None = None,
    *,
    streamer: Any = None,
    compile: bool = False,
    tokenizer: Any = None,
    **kwargs: Any,
):
    """transformers' ``generate``: a LongTensor ``(batch * num_return_sequences, length)`` of the prompt (the decoder
    prompt, start token included, for an encoder-decoder) plus the new tokens, rows that finished early padded with
    ``pad_token_id``; or, with ``return_dict_in_generate=True``, a ``Generate*Output`` (``hugkit.generation.outputs``)."""
    setup = prepare(
        model, inputs, generation_config, attention_mask=attention_mask, compile=compile, tokenizer=tokenizer,
        **kwargs,
    )
    if setup.num_beams > 1:
        if streamer is not None:
            raise ValueError(
                "streamer cannot be used with beam search (as in transformers): pass num_beams=1 to stream."
            )
        return _beam_generate(setup)
    record = Record.for_config(setup.config)
    prompt = setup.runner.prompt
    if streamer is not None:
        streamer.put(prompt.cpu())
    new_tokens = []
    for tokens in steps(setup, record):
        new_tokens.append(tokens)
        if streamer is not None:
            streamer.put(tokens.cpu())
    if streamer is not None:
        streamer.end()
    sequences = torch.cat([prompt, torch.stack(new_tokens, dim=1)], dim=1) if new_tokens else prompt
    if record is None:
        return sequences
    return _output(setup, sequences, record.scores, record.logits)


def _output(setup: Setup, sequences, scores, logits, beams: Any = None):
    from . import outputs

    as_tuple = lambda items: tuple(items) if items is not None else None  # noqa: E731
    fields: dict[str, Any] = {
        "sequences": sequences, "scores": as_tuple(scores), "logits": as_tuple(logits),
        "past_key_values": setup.runner.past_key_values,
    }
    if beams is not None:
        fields["sequences_scores"] = beams.sequences_scores
        fields["beam_indices"] = beams.beam_indices
    if setup.is_encoder_decoder:
        kind = outputs.GenerateBeamEncoderDecoderOutput if beams is not None else outputs.GenerateEncoderDecoderOutput
    else:
        kind = outputs.GenerateBeamDecoderOnlyOutput if beams is not None else outputs.GenerateDecoderOnlyOutput
    return kind(**fields)


def _beam_generate(setup: Setup):
    beam_search = _beam_search()
    config = setup.config
    record = config.get("return_dict_in_generate")
    result = beam_search(
        setup.runner, config, setup.processors, setup.criteria, batch_size=setup.batch_size,
        max_new=setup.max_new, output_scores=bool(record and config.get("output_scores")),
        output_logits=bool(record and config.get("output_logits")),
    )
    if not record:
        return result.sequences
    return _output(setup, result.sequences, result.scores, result.logits, beams=result)

