"""T5 / mT5: hugkit vs transformers on tiny random checkpoints (relative position buckets, RMS norm, relu and
gated-gelu feed-forwards, tied and untied heads), decoding with the cache, and loading rules."""

from __future__ import annotations

import json
import logging

import pytest
import torch
from safetensors.torch import load_file, save_file
from torch import nn

import hugkit.auto as auto
import transformers
from conftest import assert_close
from hugkit.kv_cache import DynamicCache, EncoderDecoderCache
from hugkit.models import mt5, t5

VOCAB, PAD, EOS, START = 99, 0, 1, 0
LENGTHS = (9, 5, 7)  # every row a different length: the batch is padded
# variant -> (model_type, transformers config overrides, lm_head with its own weights as in released checkpoints)
VARIANTS = {
    "t5-v1.0": ("t5", dict(feed_forward_proj="relu"), False),
    # v1.1 / flan-t5: gated-gelu, an lm_head of its own, no output scaling; a deeper decoder tests asymmetry.
    "t5-v1.1": ("t5", dict(feed_forward_proj="gated-gelu", tie_word_embeddings=False, num_decoder_layers=3), True),
    "mt5": ("mt5", dict(tie_word_embeddings=False), True),
}
PREFIX = {"t5": "T5", "mt5": "MT5"}
HEADS = {"base": ("Model", "AutoModel"), "seq2seq-lm": ("ForConditionalGeneration", "AutoModelForSeq2SeqLM")}


def tiny_config(variant: str):
    model_type, overrides, _ = VARIANTS[variant]
    kwargs = dict(
        vocab_size=VOCAB, d_model=32, d_kv=8, d_ff=37, num_layers=2, num_heads=4, relative_attention_num_buckets=8,
        relative_attention_max_distance=20, pad_token_id=PAD, eos_token_id=EOS, decoder_start_token_id=START,
    )
    config_class = transformers.T5Config if model_type == "t5" else transformers.MT5Config
    return config_class(**{**kwargs, **overrides})


def reference_class(variant: str, suffix: str):
    return getattr(transformers, PREFIX[VARIANTS[variant][0]] + suffix)


def build_reference(variant: str, suffix: str = "ForConditionalGeneration", seed: int = 0):
    torch.manual_seed(seed)
    model = reference_class(variant, suffix)(tiny_config(variant))
    with torch.no_grad():
        for name, param in model.named_parameters():
            if name.endswith("layer_norm.weight"):  # they start at one, which would hide a lost or misplaced norm
                param.normal_(1.0, 0.2)
            if name.endswith("relative_attention_bias.weight"):  # strong: a wrong (cached) position must show
                param.normal_(0.0, 3.0)
        # Embeddings (N(0, 1) at init) small next to the blocks' outputs: a tied head would otherwise keep predicting
        # the token it was fed, and greedy decoding would test little.
        model.shared.weight *= 0.05
        if VARIANTS[variant][2] and hasattr(model, "lm_head"):  # v1.1 / mT5 checkpoints store their own head
            model.lm_head.weight = nn.Parameter(torch.randn(VOCAB, 32))
    return model.eval()


def make_inputs(lengths=LENGTHS, seed: int = 1) -> dict[str, torch.Tensor]:
    """tokens </s> then padding, as T5's tokenizer builds a batch."""
    generator = torch.Generator().manual_seed(seed)
    length = max(lengths)
    ids = torch.randint(2, VOCAB, (len(lengths), length), generator=generator)
    mask = (torch.arange(length)[None, :] < torch.tensor(lengths)[:, None]).long()
    ids[torch.arange(len(lengths)), torch.tensor(lengths) - 1] = EOS
    return {"input_ids": ids.masked_fill(mask == 0, PAD), "attention_mask": mask}


def make_labels(length: int = 6, seed: int = 2) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    labels = torch.randint(2, VOCAB, (len(LENGTHS), length), generator=generator)
    labels[1, 4:] = -100  # ignored positions (and pad in the shifted decoder inputs)
    return labels


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    """(variant, head) -> (folder, transformers model reloaded from it with eager attention, so it returns attentions)."""
    out = {}
    for variant in VARIANTS:
        for head, (suffix, _) in HEADS.items():
            folder = tmp_path_factory.mktemp(f"{variant}-{head}")
            build_reference(variant, suffix).save_pretrained(folder)
            reference = reference_class(variant, suffix).from_pretrained(folder, attn_implementation="eager").eval()
            out[variant, head] = (folder, reference)
    return out


def _compare_groups(actual, expected, groups, atol):
    for group in groups:
        mine, theirs = getattr(actual, group), getattr(expected, group)
        assert mine is not None and len(mine) == len(theirs) > 0, group
        for i, (a, b) in enumerate(zip(mine, theirs)):
            assert_close(a, b, atol=atol, what=f"{group}[{i}]")


@pytest.mark.parametrize("head", list(HEADS))
@pytest.mark.parametrize("variant", list(VARIANTS))
def test_outputs_match_transformers(variant, head, checkpoints, caplog):
    folder, reference = checkpoints[variant, head]
    suffix, auto_name = HEADS[head]
    with caplog.at_level(logging.WARNING, logger="hugkit"):
        model = getattr(auto, auto_name).from_pretrained(folder)
    assert type(model).__name__ == PREFIX[VARIANTS[variant][0]] + suffix
    assert not caplog.records, [r.message for r in caplog.records]

    inputs = make_inputs()
    labels = make_labels()
    if head == "base":
        inputs["decoder_input_ids"] = reference._shift_right(labels)
        fields = ("last_hidden_state", "encoder_last_hidden_state")
    else:
        inputs["labels"] = labels
        fields = ("loss", "logits", "encoder_last_hidden_state")
    with torch.inference_mode():
        expected = reference(**inputs, output_hidden_states=True, output_attentions=True, use_cache=False)
        plain = model(**inputs)
        full = model(**inputs, output_hidden_states=True, output_attentions=True)
        as_tuple = model(**inputs, return_dict=False)
        expected_tuple = reference(**inputs, use_cache=False, return_dict=False)

    for name in fields:
        assert_close(getattr(plain, name), getattr(expected, name), what=f"{name} (sdpa)")
        assert_close(getattr(full, name), getattr(expected, name), what=f"{name} (eager)")
    assert plain.decoder_hidden_states is None and plain.encoder_attentions is None and plain.past_key_values is None
    _compare_groups(full, expected, ("encoder_hidden_states", "decoder_hidden_states"), 1e-4)
    _compare_groups(full, expected, ("encoder_attentions", "decoder_attentions", "cross_attentions"), 1e-5)
    assert len(full.decoder_hidden_states) == tiny_config(variant).num_decoder_layers + 1
    assert isinstance(as_tuple, tuple) and len(as_tuple) == len(expected_tuple)
    for i, (a, b) in enumerate(zip(as_tuple, expected_tuple)):
        assert_close(a, b, what=f"tuple[{i}]")


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_lm_head_tying_follows_the_checkpoint(variant, checkpoints):
    """transformers 5 ties lm_head to ``shared`` unless the checkpoint stores its own lm_head.weight."""
    folder, reference = checkpoints[variant, "seq2seq-lm"]
    model = auto.AutoModelForSeq2SeqLM.from_pretrained(folder)
    untied = VARIANTS[variant][2]
    assert (model.lm_head.weight is model.shared.weight) == (not untied)
    assert (reference.lm_head.weight is reference.shared.weight) == (not untied)
    assert model.encoder.embed_tokens is model.shared and model.decoder.embed_tokens is model.shared
    assert model.config.tie_word_embeddings is True  # as transformers writes it
    if variant != "mt5":
        assert model.config.scale_decoder_outputs == reference.config.scale_decoder_outputs == (variant == "t5-v1.0")


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_every_checkpoint_tensor_is_used(variant, checkpoints):
    folder, _ = checkpoints[variant, "seq2seq-lm"]
    stored = load_file(folder / "model.safetensors")
    model = auto.AutoModelForSeq2SeqLM.from_pretrained(folder)
    state = model.state_dict()
    assert ("lm_head.weight" in stored) == VARIANTS[variant][2]
    for name, tensor in stored.items():
        assert torch.equal(state[name], tensor), name
    assert set(stored) <= set(state)
    # Everything else is a tied alias of a stored tensor: the embeddings (and a tied lm_head).
    aliases = set(state) - set(stored)
    assert aliases <= {"encoder.embed_tokens.weight", "decoder.embed_tokens.weight", "lm_head.weight"}, aliases


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_encoder_model_matches_transformers(variant, tmp_path, checkpoints, caplog):
    folder, reference_lm = checkpoints[variant, "seq2seq-lm"]
    encoder_class = getattr(t5 if VARIANTS[variant][0] == "t5" else mt5, PREFIX[VARIANTS[variant][0]] + "EncoderModel")
    reference = reference_class(variant, "EncoderModel")(tiny_config(variant)).eval()
    reference.load_state_dict(reference_lm.state_dict(), strict=False)
    reference.save_pretrained(tmp_path)
    reference = reference_class(variant, "EncoderModel").from_pretrained(tmp_path, attn_implementation="eager").eval()
    inputs = make_inputs()
    with torch.inference_mode():
        expected = reference(**inputs, output_hidden_states=True, output_attentions=True)
    for source in (tmp_path, folder):  # its own checkpoint, and a full one whose decoder is skipped
        with caplog.at_level(logging.WARNING, logger="hugkit"):
            model = encoder_class.from_pretrained(source)
        assert not caplog.records, [r.message for r in caplog.records]
        assert type(model).__name__ == type(reference).__name__
        with torch.inference_mode():
            actual = model(**inputs, output_hidden_states=True, output_attentions=True)
            plain = model(**inputs)
        assert_close(actual.last_hidden_state, expected.last_hidden_state, what="last_hidden_state (eager)")
        assert_close(plain.last_hidden_state, expected.last_hidden_state, what="last_hidden_state (sdpa)")
        _compare_groups(actual, expected, ("hidden_states", "attentions"), 1e-5)


def test_decoder_padding_mask_and_ignored_labels(checkpoints):
    folder, reference = checkpoints["t5-v1.1", "seq2seq-lm"]
    model = auto.AutoModelForSeq2SeqLM.from_pretrained(folder)
    inputs = make_inputs()
    decoder = make_inputs(lengths=(4, 6, 3), seed=2)
    decoder_ids = reference._shift_right(decoder["input_ids"])
    kwargs = dict(**inputs, decoder_input_ids=decoder_ids, decoder_attention_mask=decoder["attention_mask"])
    with torch.inference_mode():
        expected = reference(**kwargs, use_cache=False)
        actual = model(**kwargs)
    real = decoder["attention_mask"].bool()  # padded decoder queries are undefined in both libraries
    assert_close(actual.logits[real], expected.logits[real], what="logits")

    labels = decoder["input_ids"].masked_fill(decoder["attention_mask"] == 0, -100)
    with torch.inference_mode():
        expected = reference(**inputs, labels=labels, use_cache=False)
        actual = model(**inputs, labels=labels)
    assert_close(actual.logits, expected.logits, what="logits from labels")
    assert_close(actual.loss, expected.loss, what="loss")


def _static_cache(model, batch, length):
    return EncoderDecoderCache.for_model(model, batch_size=batch, max_cache_len=length)


@pytest.mark.parametrize("kind", ["dynamic", "static"])
@pytest.mark.parametrize("variant", list(VARIANTS))
def test_cached_decoding_matches_full_forward(variant, kind, checkpoints):
    folder, _ = checkpoints[variant, "seq2seq-lm"]
    model = auto.AutoModelForSeq2SeqLM.from_pretrained(folder)
    inputs = make_inputs()
    decoder_ids = model._shift_right(make_labels(length=7))
    with torch.inference_mode():
        expected = model(**inputs, decoder_input_ids=decoder_ids).logits
        encoder_outputs = model.get_encoder()(input_ids=inputs["input_ids"], attention_mask=inputs["attention_mask"])
        cache = _static_cache(model, len(LENGTHS), 10) if kind == "static" else None
        # A 3-token prefill, then one token per step with the encoder output reused (as generation runs it).
        out = model(**inputs, decoder_input_ids=decoder_ids[:, :3], past_key_values=cache, use_cache=True)
        cache = out.past_key_values
        assert isinstance(cache, EncoderDecoderCache) and cache.get_seq_length() == 3
        assert isinstance(cache.self_attention_cache, DynamicCache) == (kind == "dynamic")
        steps = [out.logits]
        for position in range(3, decoder_ids.shape[1]):
            step_mask = torch.ones(len(LENGTHS), position + 1, dtype=torch.long)  # past and new decoder tokens
            out = model(
                encoder_outputs=encoder_outputs, attention_mask=inputs["attention_mask"],
                decoder_input_ids=decoder_ids[:, position : position + 1], decoder_attention_mask=step_mask,
                past_key_values=cache, use_cache=True,
            )
            assert out.past_key_values is cache
            steps.append(out.logits)
    assert cache.get_seq_length() == decoder_ids.shape[1]
    assert_close(torch.cat(steps, dim=1), expected, what=f"{kind} cached logits")


def _greedy(model, inputs, max_new_tokens: int, cache) -> torch.Tensor:
    """Greedy decoding with the decoder cache, finished rows padded, as transformers' generate does it."""
    encoder_outputs = model.get_encoder()(**inputs)
    tokens = torch.full((inputs["input_ids"].shape[0], 1), START, dtype=torch.long)
    finished = torch.zeros(tokens.shape[0], dtype=torch.bool)
    for _ in range(max_new_tokens):
        out = model(
            encoder_outputs=encoder_outputs, attention_mask=inputs["attention_mask"],
            decoder_input_ids=tokens[:, -1:], past_key_values=cache, use_cache=True,
        )
        cache = out.past_key_values
        chosen = out.logits[:, -1].argmax(-1).masked_fill(finished, PAD)
        tokens = torch.cat([tokens, chosen[:, None]], dim=1)
        finished |= chosen == EOS
        if bool(finished.all()):
            break
    return tokens


def _reference_generate(reference, inputs, **kwargs) -> torch.Tensor:
    # A cache without a config: transformers would size it by num_layers, not num_decoder_layers (v1.1 here).
    cache = transformers.EncoderDecoderCache(transformers.DynamicCache(), transformers.DynamicCache())
    return reference.generate(**inputs, do_sample=False, max_new_tokens=10, cache=cache, **kwargs)


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_greedy_decoding_matches_transformers_generate(variant, checkpoints):
    folder, reference = checkpoints[variant, "seq2seq-lm"]
    model = auto.AutoModelForSeq2SeqLM.from_pretrained(folder)
    inputs = make_inputs()
    with torch.inference_mode():
        expected = _reference_generate(reference, inputs)
        dynamic = _greedy(model, inputs, 10, None)
        static = _greedy(model, inputs, 10, _static_cache(model, len(LENGTHS), 11))
        generated = model.generate(**inputs, do_sample=False, max_new_tokens=10)
    assert len(expected[:, 1:].unique()) > 5, expected  # decoding really ran
    assert torch.equal(dynamic, expected), (dynamic, expected)
    assert torch.equal(static, expected), (static, expected)
    assert torch.equal(generated, expected), (generated, expected)


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_beam_search_matches_transformers_generate(variant, checkpoints):
    folder, reference = checkpoints[variant, "seq2seq-lm"]
    model = auto.AutoModelForSeq2SeqLM.from_pretrained(folder)
    inputs = make_inputs()
    with torch.inference_mode():
        expected = _reference_generate(reference, inputs, num_beams=3)
        generated = model.generate(**inputs, do_sample=False, max_new_tokens=10, num_beams=3)
    assert torch.equal(generated, expected), (generated, expected)


def test_bad_inputs_get_clear_errors(checkpoints):
    base = auto.AutoModel.from_pretrained(checkpoints["t5-v1.0", "base"][0])
    lm = auto.AutoModelForSeq2SeqLM.from_pretrained(checkpoints["t5-v1.0", "seq2seq-lm"][0])
    inputs = make_inputs()
    for model in (base, lm):
        with pytest.raises(ValueError, match="needs decoder inputs: pass decoder_input_ids"):
            model(**inputs)
    with pytest.raises(TypeError, match="EncoderDecoderCache"):
        lm(**inputs, decoder_input_ids=torch.zeros(3, 1, dtype=torch.long), past_key_values=DynamicCache())
    with pytest.raises(ValueError, match="encoder keeps no cache"):
        lm.get_encoder()(input_ids=inputs["input_ids"], use_cache=True)
    with pytest.raises(ValueError, match="exactly one of input_ids or inputs_embeds"):
        lm(decoder_input_ids=torch.zeros(3, 1, dtype=torch.long))
    with pytest.raises(ValueError, match="feed_forward_proj should be"):
        t5.T5Config(feed_forward_proj="gated-gelu-x")
    config = t5.T5Config(**{**lm.config.to_dict(), "decoder_start_token_id": None})
    with pytest.raises(ValueError, match="decoder_start_token_id"):
        t5.T5ForConditionalGeneration(config)(**inputs, labels=make_labels())


def test_config_matches_transformers():
    for ours, theirs in ((t5.T5Config, transformers.T5Config), (mt5.MT5Config, transformers.MT5Config)):
        mine, reference = ours().to_dict(), theirs().to_dict()
        for key in ("vocab_size", "d_model", "d_kv", "d_ff", "num_layers", "num_decoder_layers", "num_heads",
                    "relative_attention_num_buckets", "relative_attention_max_distance", "dropout_rate",
                    "layer_norm_epsilon", "feed_forward_proj", "dense_act_fn", "is_gated_act", "pad_token_id",
                    "eos_token_id", "tie_word_embeddings", "is_encoder_decoder", "use_cache"):
            assert mine[key] == reference[key], (ours.__name__, key)
    # A released flan-t5 config.json: untied, unscaled, gated-gelu, with its task prefixes kept.
    hub = {"model_type": "t5", "feed_forward_proj": "gated-gelu", "tie_word_embeddings": False, "num_layers": 3,
           "d_model": 64, "num_heads": 2, "task_specific_params": {"summarization": {"prefix": "summarize: "}}}
    mine, reference = t5.T5Config(**hub), transformers.T5Config(**hub)
    assert (mine.dense_act_fn, mine.is_gated_act) == (reference.dense_act_fn, reference.is_gated_act) == ("gelu_new", True)
    assert mine.scale_decoder_outputs is reference.scale_decoder_outputs is False
    assert mine.tie_word_embeddings is reference.tie_word_embeddings is True
    assert (mine.hidden_size, mine.num_attention_heads, mine.num_hidden_layers, mine.head_dim) == (64, 2, 3, 64)
    assert mine.num_decoder_layers == 3
    assert mine.task_specific_params["summarization"]["prefix"] == "summarize: "
    silu = t5.T5Config(feed_forward_proj="gated-silu")
    assert (silu.dense_act_fn, silu.is_gated_act) == ("silu", True)
    assert mt5.MT5Config(tie_word_embeddings=True).scale_decoder_outputs is False  # transformers' mT5 never scales


@pytest.mark.parametrize("variant", ["t5-v1.0", "t5-v1.1"])
def test_save_pretrained_loads_in_transformers(variant, tmp_path, checkpoints):
    folder, reference = checkpoints[variant, "seq2seq-lm"]
    model = auto.AutoModelForSeq2SeqLM.from_pretrained(folder)
    model.save_pretrained(tmp_path)
    saved = json.loads((tmp_path / "config.json").read_text())
    assert saved["scale_decoder_outputs"] == (variant == "t5-v1.0") and saved["tie_word_embeddings"] is True
    assert ("lm_head.weight" in load_file(tmp_path / "model.safetensors")) == VARIANTS[variant][2]
    reloaded = transformers.T5ForConditionalGeneration.from_pretrained(tmp_path).eval()
    expected_state = reference.state_dict()
    for name, tensor in reloaded.state_dict().items():
        assert torch.equal(tensor, expected_state[name]), name
    again = auto.AutoModelForSeq2SeqLM.from_pretrained(tmp_path)
    inputs = {**make_inputs(), "labels": make_labels()}
    with torch.inference_mode():
        expected = reference(**inputs, use_cache=False).logits
        assert_close(reloaded(**inputs, use_cache=False).logits, expected, what="transformers reload")
        assert_close(again(**inputs).logits, expected, what="hugkit reload")


def test_legacy_checkpoint_keys(tmp_path, checkpoints):
    """Old checkpoints store the embeddings three times and a cross-attention relative bias T5 never reads."""
    folder, reference = checkpoints["t5-v1.0", "seq2seq-lm"]
    state = load_file(folder / "model.safetensors")
    state["encoder.embed_tokens.weight"] = state["shared.weight"].clone()
    state["decoder.embed_tokens.weight"] = state["shared.weight"].clone()
    state["lm_head.weight"] = state["shared.weight"].clone()
    state["decoder.block.0.layer.1.EncDecAttention.relative_attention_bias.weight"] = torch.randn(8, 4)
    save_file(state, tmp_path / "model.safetensors")
    reference.config.save_pretrained(tmp_path)
    model = t5.T5ForConditionalGeneration.from_pretrained(tmp_path)
    assert model.encoder.embed_tokens.weight is model.shared.weight
    inputs = {**make_inputs(), "labels": make_labels()}
    with torch.inference_mode():
        assert_close(model(**inputs).logits, reference(**inputs, use_cache=False).logits, what="logits")

    state["encoder.block.0.layer.0.SelfAttention.bogus"] = torch.zeros(1)
    save_file(state, tmp_path / "model.safetensors")
    with pytest.raises(ValueError, match="unexpected keys.*SelfAttention.bogus"):
        t5.T5ForConditionalGeneration.from_pretrained(tmp_path)


def test_base_checkpoint_into_lm_ties_the_head(checkpoints):
    """A T5Model checkpoint has no lm_head: both libraries use the shared embeddings for it."""
    folder, _ = checkpoints["t5-v1.1", "base"]
    reference = transformers.T5ForConditionalGeneration.from_pretrained(folder).eval()
    model = t5.T5ForConditionalGeneration.from_pretrained(folder)
    assert model.lm_head.weight is model.shared.weight
    inputs = {**make_inputs(), "labels": make_labels()}
    with torch.inference_mode():
        assert_close(model(**inputs).logits, reference(**inputs, use_cache=False).logits, what="logits")


def test_relative_position_buckets_match_transformers():
    relative = torch.arange(-300, 301)[None, :].repeat(2, 1)
    for bidirectional in (True, False):
        for buckets, distance in ((32, 128), (8, 20)):
            expected = transformers.models.t5.modeling_t5.T5Attention._relative_position_bucket(
                relative, bidirectional=bidirectional, num_buckets=buckets, max_distance=distance
            )
            assert torch.equal(t5.relative_position_bucket(relative, bidirectional, buckets, distance), expected)


def test_fp16_overflow_is_clamped_as_in_transformers():
    largest = torch.finfo(torch.float16).max
    finite = torch.tensor([1.0, -largest, largest], dtype=torch.float16)
    assert torch.equal(t5._clamp_fp16(finite), finite)  # nothing overflowed: unchanged
    overflowed = torch.tensor([float("inf"), -float("inf"), 2.0, largest], dtype=torch.float16)
    limit = largest - 1000
    expected = torch.tensor([limit, -limit, 2.0, limit], dtype=torch.float16)
    assert torch.equal(t5._clamp_fp16(overflowed), expected)
    as_float = torch.tensor([float("inf")])
    assert t5._clamp_fp16(as_float) is as_float  # only fp16 is clamped


@pytest.mark.parametrize("variant", ["t5-v1.0", "t5-v1.1"])
def test_int8_on_load_with_tied_and_untied_heads(variant, checkpoints):
    folder, _ = checkpoints[variant, "seq2seq-lm"]
    model = auto.AutoModelForSeq2SeqLM.from_pretrained(folder)
    quantized = auto.AutoModelForSeq2SeqLM.from_pretrained(folder, quantization="int8")
    assert not isinstance(quantized.lm_head, nn.Linear)  # the head is quantized too, tied or not
    inputs = {**make_inputs(), "labels": make_labels()}
    with torch.inference_mode():
        expected, actual = model(**inputs).logits, quantized(**inputs).logits
    assert_close(actual, expected, atol=0.05 * float(expected.abs().max()), what="int8 logits")


@pytest.mark.parametrize("variant", ["t5-v1.0", "t5-v1.1"])
def test_resize_token_embeddings_keeps_the_ties(variant, checkpoints):
    folder, _ = checkpoints[variant, "seq2seq-lm"]
    model = auto.AutoModelForSeq2SeqLM.from_pretrained(folder)
    old_head = model.lm_head.weight.detach().clone()
    model.resize_token_embeddings(VOCAB + 5)
    assert model.encoder.embed_tokens.weight is model.shared.weight is model.decoder.embed_tokens.weight
    assert (model.lm_head.weight is model.shared.weight) == (not VARIANTS[variant][2])
    assert model.lm_head.weight.shape == (VOCAB + 5, 32) and model.config.vocab_size == VOCAB + 5
    assert torch.equal(model.lm_head.weight[:VOCAB], old_head)
    with torch.inference_mode():
        assert model(**make_inputs(), labels=make_labels()).logits.shape[-1] == VOCAB + 5
