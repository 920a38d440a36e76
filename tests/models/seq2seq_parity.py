"""Shared checks for encoder-decoder parity tests (Marian, mBART, Pegasus): hugkit vs transformers on tiny random
checkpoints, full forward, strict loading, cached decoding and greedy generation.

A test file describes its architecture with a ``Spec`` and calls these helpers; every helper asserts real values.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file

import hugkit.auto as auto
import transformers
from conftest import assert_close
from hugkit.generation.config import GenerationConfig
from hugkit.kv_cache import EncoderDecoderCache

VOCAB = 99
LENGTHS = (9, 5, 7)  # every row a different length: the encoder batch is padded
DECODER_LENGTH = 6


@dataclass
class Spec:
    """One architecture: transformers' config class and kwargs, class names, and its special tokens."""

    config_class: str
    base_class: str
    lm_class: str
    pad: int
    eos: int
    decoder_start: int
    config_kwargs: dict[str, Any] = field(default_factory=dict)

    def tiny_config(self, **overrides):
        kwargs = dict(
            vocab_size=VOCAB, d_model=32, encoder_layers=2, decoder_layers=2, encoder_attention_heads=4,
            decoder_attention_heads=4, encoder_ffn_dim=37, decoder_ffn_dim=37, max_position_embeddings=64,
            pad_token_id=self.pad, eos_token_id=self.eos, decoder_start_token_id=self.decoder_start,
            forced_eos_token_id=self.eos, scale_embedding=True,
            init_std=0.3,  # larger than real checkpoints' 0.02, so outputs depend clearly on every input token
        )
        return getattr(transformers, self.config_class)(**{**kwargs, **self.config_kwargs, **overrides})

    @property
    def lm_vocab(self) -> int:
        return self.config_kwargs.get("decoder_vocab_size", VOCAB)


def build_reference(spec: Spec, lm: bool, seed: int = 0, **overrides):
    """A random transformers model (fp32, eval): biases, LayerNorm weights and final_logits_bias made non-trivial
    (transformers starts them at 0 / 1 / 0, which would hide a lost or misplaced one)."""
    torch.manual_seed(seed)
    model = getattr(transformers, spec.lm_class if lm else spec.base_class)(spec.tiny_config(**overrides))
    with torch.no_grad():
        for name, param in model.named_parameters():
            if name.endswith("bias") and not param.any():
                param.normal_(0.0, 0.05)
            elif ("layer_norm" in name or "layernorm" in name) and name.endswith("weight"):
                param.normal_(1.0, 0.1)
        if lm:
            model.final_logits_bias.normal_(0.0, 0.05)
    return model.eval()


def save_checkpoint(spec: Spec, folder: Path, lm: bool, seed: int = 0, **overrides):
    """Save a random model to ``folder``; return transformers' model reloaded from it with eager attention (so it
    returns attention probabilities), the reference every check compares against."""
    build_reference(spec, lm, seed, **overrides).save_pretrained(folder)
    name = spec.lm_class if lm else spec.base_class
    return getattr(transformers, name).from_pretrained(folder, attn_implementation="eager").eval()


def load_hugkit(folder: Path, lm: bool, caplog=None):
    """Load through the Auto classes, as a user would; no warnings allowed."""
    auto_class = auto.AutoModelForSeq2SeqLM if lm else auto.AutoModel
    if caplog is None:
        return auto_class.from_pretrained(folder)
    with caplog.at_level(logging.WARNING, logger="hugkit"):
        model = auto_class.from_pretrained(folder)
    assert not caplog.records, [r.message for r in caplog.records]
    return model


def encoder_inputs(spec: Spec, lengths=LENGTHS, seed: int = 1) -> dict[str, torch.Tensor]:
    """Right-padded source rows ending in </s>, as the tokenizers build them."""
    generator = torch.Generator().manual_seed(seed)
    length = max(lengths)
    ids = torch.randint(3, VOCAB - 2, (len(lengths), length), generator=generator)
    mask = (torch.arange(length)[None, :] < torch.tensor(lengths)[:, None]).long()
    ids[torch.arange(len(lengths)), torch.tensor(lengths) - 1] = spec.eos
    return {"input_ids": ids.masked_fill(mask == 0, spec.pad), "attention_mask": mask}


def decoder_ids(spec: Spec, rows: int = len(LENGTHS), length: int = DECODER_LENGTH, seed: int = 2) -> torch.Tensor:
    """Unpadded decoder inputs: the start token, then target-vocabulary tokens."""
    generator = torch.Generator().manual_seed(seed)
    ids = torch.randint(3, spec.lm_vocab - 2, (rows, length), generator=generator)
    ids[:, 0] = spec.decoder_start
    return ids


# --- checks ----------------------------------------------------------------------------------------------------


def check_full_forward(model, reference, inputs: dict[str, torch.Tensor], lm: bool) -> None:
    """Every output field (logits or last hidden state, encoder output, all hidden states and attentions, tuple
    form) against transformers, on the sdpa path (plain call) and the eager path (attentions asked for)."""
    with torch.inference_mode():
        expected = reference(**inputs, output_hidden_states=True, output_attentions=True, use_cache=False)
        plain = model(**inputs)
        full = model(**inputs, output_hidden_states=True, output_attentions=True)
        as_tuple = model(**inputs, return_dict=False)
        expected_tuple = reference(**inputs, use_cache=False, return_dict=False)
    main = "logits" if lm else "last_hidden_state"
    for name in (main, "encoder_last_hidden_state"):
        assert_close(getattr(plain, name), getattr(expected, name), what=f"{name} (sdpa)")
        assert_close(getattr(full, name), getattr(expected, name), what=f"{name} (eager)")
    assert plain.decoder_hidden_states is None and plain.encoder_attentions is None
    assert plain.past_key_values is None  # no cache unless asked for
    for group in ("encoder_hidden_states", "decoder_hidden_states"):
        mine, theirs = getattr(full, group), getattr(expected, group)
        assert len(mine) == len(theirs) == 3, group  # embeddings + 2 layers (the last after any final norm)
        for i, (a, b) in enumerate(zip(mine, theirs)):
            assert_close(a, b, what=f"{group}[{i}]")
    for group in ("encoder_attentions", "decoder_attentions", "cross_attentions"):
        mine, theirs = getattr(full, group), getattr(expected, group)
        assert len(mine) == len(theirs) == 2, group
        for i, (a, b) in enumerate(zip(mine, theirs)):
            assert_close(a, b, atol=1e-5, what=f"{group}[{i}]")
    assert isinstance(as_tuple, tuple) and len(as_tuple) == len(expected_tuple) == 2
    for i, (a, b) in enumerate(zip(as_tuple, expected_tuple)):
        assert_close(a, b, what=f"tuple[{i}]")


def check_labels_and_masks(spec: Spec, model, reference) -> None:
    """Padded decoder inputs with their mask, then labels (-100 on padding): logits from the shifted labels and
    the loss."""
    inputs = encoder_inputs(spec)
    decoder = decoder_ids(spec)
    decoder_mask = (torch.arange(DECODER_LENGTH)[None, :] < torch.tensor([4, 6, 3])[:, None]).long()
    kwargs = dict(**inputs, decoder_input_ids=decoder.masked_fill(decoder_mask == 0, spec.pad),
                  decoder_attention_mask=decoder_mask)
    with torch.inference_mode():
        expected = reference(**kwargs, use_cache=False)
        actual = model(**kwargs)
    real = decoder_mask.bool()  # padded decoder queries are undefined in both libraries
    assert_close(actual.logits[real], expected.logits[real], what="logits (padded decoder)")

    labels = decoder_ids(spec, seed=3).masked_fill(decoder_mask == 0, -100)
    labels[:, 0] = decoder[:, 1]  # a real first target token, not the start token
    with torch.inference_mode():
        expected = reference(**inputs, labels=labels, use_cache=False)
        actual = model(**inputs, labels=labels)
    assert_close(actual.logits, expected.logits, what="logits from labels")
    assert_close(actual.loss, expected.loss, what="loss")
    assert actual.loss.item() > 0


def check_embeds(spec: Spec, model, reference) -> None:
    """inputs_embeds and decoder_inputs_embeds (each architecture scales them its own way)."""
    inputs = encoder_inputs(spec)
    decoder = decoder_ids(spec)
    embed = reference.get_input_embeddings()
    decoder_embed = reference.get_decoder().embed_tokens
    kwargs = dict(
        inputs_embeds=embed(inputs["input_ids"]), attention_mask=inputs["attention_mask"],
        decoder_inputs_embeds=decoder_embed(decoder),
    )
    with torch.inference_mode():
        expected = reference(**kwargs, use_cache=False)
        actual = model(**{k: v.clone() for k, v in kwargs.items()})
    assert_close(actual.logits, expected.logits, what="logits from embeddings")
    assert_close(actual.encoder_last_hidden_state, expected.encoder_last_hidden_state, what="encoder from embeddings")


def check_every_key_used(model, folder: Path, reference) -> None:
    """Strict loading, both ways: every checkpoint tensor is a hugkit tensor with the same value (the sinusoidal
    tables, where a checkpoint carries them, equal hugkit's computed ones), and every hugkit parameter and
    persistent buffer equals transformers' tensor of the same name."""
    stored = load_file(folder / "model.safetensors")
    mine = dict(model.named_parameters(remove_duplicate=False))
    mine.update(model.named_buffers(remove_duplicate=False))
    for key, tensor in stored.items():
        assert key in mine, f"checkpoint key {key!r} has no hugkit tensor"
        assert_close(mine[key], tensor, atol=1e-6, what=key)
    theirs = dict(reference.named_parameters(remove_duplicate=False))
    theirs.update(reference.named_buffers(remove_duplicate=False))
    for key, tensor in mine.items():
        assert key in theirs, f"hugkit tensor {key!r} is not in transformers' model"
        assert_close(tensor, theirs[key], atol=1e-6, what=key)
    assert not any(t.is_meta for t in mine.values())


def _greedy_reference_logits(model, inputs, decoder) -> torch.Tensor:
    with torch.inference_mode():
        return model(**inputs, decoder_input_ids=decoder).logits


def check_cached_decoding(spec: Spec, model) -> None:
    """Prefill three decoder tokens, then one at a time: with a static EncoderDecoderCache (explicit
    cache_position, as generation feeds it) and with the dynamic cache use_cache=True returns; every step's
    logits equal the full forward's."""
    inputs = encoder_inputs(spec)
    decoder = decoder_ids(spec)
    full = _greedy_reference_logits(model, inputs, decoder)
    rows = decoder.shape[0]
    with torch.inference_mode():
        encoded = model.get_encoder()(**inputs)
        assert_close(encoded.last_hidden_state, model(**inputs, decoder_input_ids=decoder).encoder_last_hidden_state)

        static = EncoderDecoderCache.for_model(model, rows, DECODER_LENGTH + 2)
        dynamic = None
        chunks = [(0, 3)] + [(i, i + 1) for i in range(3, DECODER_LENGTH)]
        for start, end in chunks:
            step = dict(encoder_outputs=encoded, attention_mask=inputs["attention_mask"],
                        decoder_input_ids=decoder[:, start:end])
            out = model(**step, past_key_values=static, cache_position=torch.arange(start, end))
            assert out.past_key_values is static
            static.seen_tokens = end
            assert_close(out.logits, full[:, start:end], what=f"static cache, tokens {start}:{end}")
            out = model(**step, past_key_values=dynamic, use_cache=True)
            dynamic = out.past_key_values
            assert isinstance(dynamic, EncoderDecoderCache) and dynamic.get_seq_length() == end
            assert_close(out.logits, full[:, start:end], what=f"dynamic cache, tokens {start}:{end}")
        # The cross-attention keys/values were computed once per layer and kept.
        assert sorted(static.cross_keys) == sorted(dynamic.cross_keys) == [0, 1]

        # A static cache without cache_position counts its own slots; logits_to_keep keeps the last position.
        counting = EncoderDecoderCache.for_model(model, rows, DECODER_LENGTH)
        out = model(**inputs, decoder_input_ids=decoder[:, :4], past_key_values=counting, logits_to_keep=1)
        assert counting.seen_tokens == 4 and out.logits.shape[1] == 1
        assert_close(out.logits[:, 0], full[:, 3], what="static cache, counted slots, last logits")
        out = model(**inputs, decoder_input_ids=decoder[:, 4:5], past_key_values=counting)
        assert_close(out.logits[:, 0], full[:, 4], what="static cache, counted slots, next step")


def reference_generate(reference, inputs, **kwargs) -> torch.Tensor:
    with torch.inference_mode():
        return reference.generate(**inputs, do_sample=False, num_beams=1, max_new_tokens=10, **kwargs)


def greedy_with_cache(model, inputs, max_new_tokens: int = 10, forced_bos: int | None = None) -> torch.Tensor:
    """Greedy decoding by hand over hugkit's static cache, with transformers' rules: start at
    decoder_start_token_id, force forced_bos_token_id first and forced_eos_token_id at the length limit, and
    pad rows that have finished until every row has."""
    config = model.config
    rows = inputs["input_ids"].shape[0]
    tokens = torch.full((rows, 1), config.decoder_start_token_id)
    finished = torch.zeros(rows, dtype=torch.bool)
    cache = EncoderDecoderCache.for_model(model, rows, 1 + max_new_tokens)
    with torch.inference_mode():
        encoded = model.get_encoder()(**inputs)
        for step in range(max_new_tokens):
            new = tokens if step == 0 else tokens[:, -1:]
            start = 0 if step == 0 else tokens.shape[1] - 1
            logits = model(
                encoder_outputs=encoded, attention_mask=inputs["attention_mask"], decoder_input_ids=new,
                past_key_values=cache, cache_position=torch.arange(start, tokens.shape[1]), logits_to_keep=1,
            ).logits[:, -1]
            cache.seen_tokens = tokens.shape[1]
            choice = logits.argmax(-1)
            if step == 0 and forced_bos is not None:
                choice = torch.full_like(choice, forced_bos)
            if step == max_new_tokens - 1 and config.forced_eos_token_id is not None:
                choice = torch.full_like(choice, config.forced_eos_token_id)
            choice = torch.where(finished, torch.full_like(choice, config.pad_token_id), choice)
            tokens = torch.cat([tokens, choice[:, None]], dim=1)
            finished |= choice == config.eos_token_id
            if bool(finished.all()):
                break
    return tokens


def check_greedy_generation(
    spec: Spec, folder: Path, eos_bias: float, input_seed: int, saved_generation: dict | None = None,
    **generate_kwargs,
) -> torch.Tensor:
    """Greedy decoding by hand over hugkit's cache, and hugkit's ``generate`` (greedy and 3 beams), give exactly
    transformers' ``generate`` tokens.

    ``eos_bias`` is added to </s>'s final_logits_bias so that some rows stop early (then they are padded) and
    others run to the length limit (where </s> is forced): both paths of the loop are compared. The bias and the
    inputs' seed were picked (per architecture) so that this happens. ``saved_generation``: fields written into
    the checkpoint's generation_config.json (transformers applies them; the loop reads them from hugkit's
    GenerationConfig of the folder); ``generate_kwargs`` go to transformers' ``generate`` and the loop alike."""
    reference = build_reference(spec, lm=True)
    with torch.no_grad():
        reference.final_logits_bias[0, spec.eos] += eos_bias
    for name, value in (saved_generation or {}).items():
        setattr(reference.generation_config, name, value)
    reference.save_pretrained(folder)
    model = load_hugkit(folder, True)
    saved = GenerationConfig.from_pretrained(folder)
    assert model.generation_config.forced_bos_token_id == saved.forced_bos_token_id  # read with the checkpoint
    forced_bos = generate_kwargs.get("forced_bos_token_id", saved.forced_bos_token_id)
    inputs = encoder_inputs(spec, lengths=(9, 5, 7, 8), seed=input_seed)
    expected = reference_generate(reference, inputs, **generate_kwargs)
    actual = greedy_with_cache(model, inputs, forced_bos=forced_bos)
    assert actual.tolist() == expected.tolist()
    # hugkit's own generate (the encoder once, the decoder over a static EncoderDecoderCache), greedy and beam.
    assert model.generate(**inputs, do_sample=False, max_new_tokens=10, **generate_kwargs).tolist() == expected.tolist()
    beams = dict(do_sample=False, num_beams=3, max_new_tokens=10, **generate_kwargs)
    with torch.inference_mode():
        expected_beams = reference.generate(**inputs, **beams)
    assert model.generate(**inputs, **beams).tolist() == expected_beams.tolist()
    assert expected.shape[1] == 11, expected  # some row ran to the limit: start token + 10 new tokens
    stopped_early = (expected[:, 1:-1] == spec.eos).any(dim=1)
    assert stopped_early.any() and not stopped_early.all(), expected
    assert len({tuple(row) for row in expected.tolist()}) > 2, expected  # the rows' inputs show in their outputs
    return expected
