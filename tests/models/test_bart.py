"""BART: hugkit vs transformers on tiny random checkpoints (encoder-decoder, eos pooling, LM logits)."""

from __future__ import annotations

import logging

import pytest
import torch
from safetensors.torch import save_file

import hugkit.auto as auto
import transformers
from conftest import assert_close
from hugkit.models import bart

VOCAB, BOS, PAD, EOS = 99, 0, 1, 2
LENGTHS = (9, 5, 7)  # every row a different length: the batch is padded
TASKS = {  # task -> (transformers class, hugkit auto class, output fields compared)
    "base": ("BartModel", "AutoModel", ("last_hidden_state", "encoder_last_hidden_state")),
    "sequence-classification": (
        "BartForSequenceClassification", "AutoModelForSequenceClassification", ("logits", "encoder_last_hidden_state"),
    ),
    "seq2seq-lm": ("BartForConditionalGeneration", "AutoModelForSeq2SeqLM", ("logits", "encoder_last_hidden_state")),
}


def tiny_config(**overrides) -> transformers.BartConfig:
    kwargs = dict(
        vocab_size=VOCAB, d_model=32, encoder_layers=2, decoder_layers=2, encoder_attention_heads=4,
        decoder_attention_heads=4, encoder_ffn_dim=37, decoder_ffn_dim=37, max_position_embeddings=64,
        bos_token_id=BOS, pad_token_id=PAD, eos_token_id=EOS, decoder_start_token_id=EOS, num_labels=3,
    )
    return transformers.BartConfig(**{**kwargs, **overrides})


def build_reference(task: str, seed: int = 0, **overrides):
    torch.manual_seed(seed)
    model = getattr(transformers, TASKS[task][0])(tiny_config(**overrides))
    with torch.no_grad():  # non-zero biases everywhere (transformers starts them at zero, which hides a lost bias)
        for name, param in model.named_parameters():
            if name.endswith("bias") and not param.any():
                param.normal_(0.0, 0.05)
        if task == "seq2seq-lm":
            model.final_logits_bias.normal_(0.0, 0.05)
    return model.eval()


def make_inputs(lengths=LENGTHS, seed: int = 1) -> dict[str, torch.Tensor]:
    """<s> tokens </s> then padding, as BART's tokenizer builds a batch."""
    generator = torch.Generator().manual_seed(seed)
    length = max(lengths)
    ids = torch.randint(3, VOCAB, (len(lengths), length), generator=generator)
    mask = (torch.arange(length)[None, :] < torch.tensor(lengths)[:, None]).long()
    ids[:, 0] = BOS
    ids[torch.arange(len(lengths)), torch.tensor(lengths) - 1] = EOS
    return {"input_ids": ids.masked_fill(mask == 0, PAD), "attention_mask": mask}


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    """task -> (folder, transformers model reloaded from it with eager attention, so it returns attentions)."""
    out = {}
    for task, (class_name, _, _) in TASKS.items():
        folder = tmp_path_factory.mktemp(f"bart-{task}")
        build_reference(task).save_pretrained(folder)
        reference = getattr(transformers, class_name).from_pretrained(folder, attn_implementation="eager").eval()
        out[task] = (folder, reference)
    return out


@pytest.mark.parametrize("task", list(TASKS))
def test_outputs_match_transformers(task, checkpoints, caplog):
    folder, reference = checkpoints[task]
    _, auto_name, fields = TASKS[task]
    with caplog.at_level(logging.WARNING, logger="hugkit"):
        model = getattr(auto, auto_name).from_pretrained(folder)
    assert type(model).__name__ == TASKS[task][0]
    assert not caplog.records, [r.message for r in caplog.records]

    inputs = make_inputs()
    with torch.inference_mode():
        expected = reference(**inputs, output_hidden_states=True, output_attentions=True, use_cache=False)
        plain = model(**inputs)
        full = model(**inputs, output_hidden_states=True, output_attentions=True)
        as_tuple = model(**inputs, return_dict=False)

    for name in fields:
        assert_close(getattr(plain, name), getattr(expected, name), what=f"{name} (sdpa)")
        assert_close(getattr(full, name), getattr(expected, name), what=f"{name} (eager)")
    assert plain.decoder_hidden_states is None and plain.encoder_attentions is None
    for group in ("encoder_hidden_states", "decoder_hidden_states"):
        mine, theirs = getattr(full, group), getattr(expected, group)
        assert len(mine) == len(theirs) == 3, group  # embeddings + 2 layers
        for i, (a, b) in enumerate(zip(mine, theirs)):
            assert_close(a, b, what=f"{group}[{i}]")
    for group in ("encoder_attentions", "decoder_attentions", "cross_attentions"):
        mine, theirs = getattr(full, group), getattr(expected, group)
        assert len(mine) == len(theirs) == 2, group
        for i, (a, b) in enumerate(zip(mine, theirs)):
            assert_close(a, b, atol=1e-5, what=f"{group}[{i}]")

    expected_tuple = reference(**inputs, use_cache=False, return_dict=False)
    assert isinstance(as_tuple, tuple) and len(as_tuple) == len(expected_tuple) == 2
    for i, (a, b) in enumerate(zip(as_tuple, expected_tuple)):
        assert_close(a, b, what=f"tuple[{i}]")


def test_explicit_decoder_inputs_and_masks(checkpoints):
    folder, reference = checkpoints["seq2seq-lm"]
    model = auto.AutoModelForSeq2SeqLM.from_pretrained(folder)
    inputs = make_inputs()
    decoder = make_inputs(lengths=(4, 6, 3), seed=2)
    kwargs = dict(**inputs, decoder_input_ids=decoder["input_ids"], decoder_attention_mask=decoder["attention_mask"])
    with torch.inference_mode():
        expected = reference(**kwargs, use_cache=False)
        actual = model(**kwargs)
    real = decoder["attention_mask"].bool()  # padded decoder queries are undefined in both libraries
    assert_close(actual.logits[real], expected.logits[real], what="logits")

    labels = decoder["input_ids"]
    with torch.inference_mode():
        expected = reference(**inputs, labels=labels, use_cache=False)
        actual = model(**inputs, labels=labels)
    assert_close(actual.logits, expected.logits, what="logits from labels")
    assert_close(actual.loss, expected.loss, what="loss")


def test_scale_embedding_and_gelu_variants(tmp_path):
    reference = build_reference("base", seed=3, scale_embedding=True, activation_function="relu")
    reference.save_pretrained(tmp_path)
    model = auto.AutoModel.from_pretrained(tmp_path)
    assert model.shared.embed_scale == pytest.approx(32**0.5)
    inputs = make_inputs()
    with torch.inference_mode():
        expected = reference(**inputs, use_cache=False)
        actual = model(**inputs)
    assert_close(actual.last_hidden_state, expected.last_hidden_state, what="last_hidden_state")


def test_rows_with_different_eos_counts_are_refused(checkpoints):
    folder, _ = checkpoints["sequence-classification"]
    model = auto.AutoModelForSequenceClassification.from_pretrained(folder)
    inputs = make_inputs()
    inputs["input_ids"][0, 3] = EOS  # row 0 now has two </s>, the others one
    with pytest.raises(ValueError, match=r"same number of <eos> tokens.*\[2, 1, 1\]"):
        model(**inputs)
    inputs = make_inputs()
    inputs["input_ids"][1, 4] = 7  # row 1 lost its </s>
    with pytest.raises(ValueError, match=r"at least one <eos>.*rows \[1\]"):
        model(**inputs)


def test_no_decoder_inputs_is_a_clear_error(checkpoints):
    model = auto.AutoModel.from_pretrained(checkpoints["base"][0])
    with pytest.raises(ValueError, match="decoder_input_ids"):
        model(inputs_embeds=torch.zeros(1, 3, 32))


def test_fairseq_style_checkpoint_keys(tmp_path, checkpoints):
    """facebook/bart-large-mnli stores shared, encoder and decoder embeddings separately, plus version markers."""
    _, reference = checkpoints["sequence-classification"]
    state = {name: tensor.clone() for name, tensor in reference.state_dict().items()}
    state["model.encoder.embed_tokens.weight"] = state["model.shared.weight"].clone()
    state["model.decoder.embed_tokens.weight"] = state["model.shared.weight"].clone()
    state["model.encoder.version"] = torch.tensor([3.0])
    state["model.decoder.version"] = torch.tensor([3.0])
    save_file(state, tmp_path / "model.safetensors")
    reference.config.save_pretrained(tmp_path)
    model = bart.BartForSequenceClassification.from_pretrained(tmp_path)
    assert model.model.encoder.embed_tokens.weight is model.model.shared.weight
    assert model.model.decoder.embed_tokens.weight is model.model.shared.weight
    inputs = make_inputs()
    with torch.inference_mode():
        assert_close(model(**inputs).logits, reference(**inputs, use_cache=False).logits, what="logits")


def test_missing_final_logits_bias_starts_at_zero(tmp_path, checkpoints):
    _, reference = checkpoints["seq2seq-lm"]
    state = {k: v.clone() for k, v in reference.state_dict().items() if k not in ("final_logits_bias", "lm_head.weight")}
    save_file(state, tmp_path / "model.safetensors")
    reference.config.save_pretrained(tmp_path)
    model = bart.BartForConditionalGeneration.from_pretrained(tmp_path)
    assert torch.equal(model.final_logits_bias, torch.zeros(1, VOCAB))
    assert model.lm_head.weight is model.model.shared.weight


def test_save_pretrained_loads_in_transformers(tmp_path, checkpoints):
    folder, reference = checkpoints["seq2seq-lm"]
    model = bart.BartForConditionalGeneration.from_pretrained(folder)
    model.save_pretrained(tmp_path)
    reloaded = transformers.BartForConditionalGeneration.from_pretrained(tmp_path).eval()
    inputs = make_inputs()
    with torch.inference_mode():
        assert_close(reloaded(**inputs, use_cache=False).logits, reference(**inputs, use_cache=False).logits, atol=1e-6)


def test_bart_tokenizer_matches_transformers(tmp_path):
    """BartTokenizer folders (vocab.json + merges.txt): a RoBERTa-layout vocabulary built from GPT-2's BPE files."""
    import json
    import shutil

    import hugkit
    from tests.assets import GPT2_FILES, require

    source = require(GPT2_FILES)
    vocab = {"<s>": 0, "<pad>": 1, "</s>": 2, "<unk>": 3}
    for token, _ in sorted(json.loads((source / "encoder.json").read_text()).items(), key=lambda item: item[1]):
        vocab.setdefault(token, len(vocab))
    vocab["<mask>"] = len(vocab)
    (tmp_path / "vocab.json").write_text(json.dumps(vocab))
    shutil.copy(source / "vocab.bpe", tmp_path / "merges.txt")
    (tmp_path / "tokenizer_config.json").write_text(json.dumps({"tokenizer_class": "BartTokenizer"}))
    reference = transformers.AutoTokenizer.from_pretrained(tmp_path)
    tokenizer = hugkit.AutoTokenizer.from_pretrained(tmp_path)
    assert len(tokenizer) == len(reference) == len(vocab)
    firsts = ["Hello world!", " leading space", "naïve café <mask> tokens"]
    seconds = ["a\n\nb  c", "The company went bankrupt.", "This example is politics."]
    expected = reference(firsts, seconds, padding=True)
    actual = tokenizer(firsts, seconds, padding=True)
    assert actual["input_ids"] == expected["input_ids"]
    assert actual["attention_mask"] == expected["attention_mask"]
    assert expected["input_ids"][0][:3] == [0, 15500, 999]  # <s> Hello world: not an empty comparison


# --- decoder cache and encoder access (what generate runs on) ---------------------------------------------------


def _decoder_ids(seed: int = 3, length: int = 7) -> torch.Tensor:
    ids = torch.randint(3, VOCAB, (len(LENGTHS), length), generator=torch.Generator().manual_seed(seed))
    ids[:, 0] = EOS  # BART's decoder start token
    return ids


def _step_by_step(model, inputs, decoder_ids, cache, first: int = 3):
    """Logits of every decoder position: ``first`` tokens at once, then one per call, over ``cache``."""
    encoded = model.get_encoder()(input_ids=inputs["input_ids"], attention_mask=inputs["attention_mask"])
    common = dict(encoder_outputs=encoded, attention_mask=inputs["attention_mask"], use_cache=True)
    out = model(**common, decoder_input_ids=decoder_ids[:, :first], past_key_values=cache)
    logits = [out.logits]
    for i in range(first, decoder_ids.shape[1]):
        out = model(**common, decoder_input_ids=decoder_ids[:, i : i + 1], past_key_values=out.past_key_values)
        logits.append(out.logits)
    return torch.cat(logits, dim=1), out.past_key_values


def test_cached_decoding_equals_the_full_forward(checkpoints):
    from hugkit.kv_cache import DynamicCache, EncoderDecoderCache, StaticCache

    folder, reference = checkpoints["seq2seq-lm"]
    model = auto.AutoModelForSeq2SeqLM.from_pretrained(folder)
    inputs, decoder_ids = make_inputs(), _decoder_ids()
    with torch.inference_mode():
        full = model(**inputs, decoder_input_ids=decoder_ids).logits
        expected = reference(**inputs, decoder_input_ids=decoder_ids, use_cache=False).logits
        dynamic, cache = _step_by_step(model, inputs, decoder_ids, None)  # use_cache=True starts a dynamic cache
        static, static_cache = _step_by_step(model, inputs, decoder_ids, EncoderDecoderCache.for_model(model, 3, 12))
        bare, bare_cache = _step_by_step(model, inputs, decoder_ids, StaticCache.for_model(model, 3, 12))
    assert_close(full, expected, what="full forward")
    for name, logits in (("dynamic", dynamic), ("static", static), ("bare static", bare)):
        assert_close(logits, full, atol=1e-5, what=f"{name} cache")
    assert isinstance(cache, EncoderDecoderCache) and isinstance(cache.self_attention_cache, DynamicCache)
    assert cache.get_seq_length() == static_cache.get_seq_length() == bare_cache.get_seq_length() == 7
    assert sorted(cache.cross_keys) == [0, 1]  # cross-attention keys computed once per layer
    assert model.kv_cache_shape() == (2, 4, 8)


def test_cached_decoding_matches_transformers_past_key_values(checkpoints):
    folder, reference = checkpoints["seq2seq-lm"]
    model = auto.AutoModelForSeq2SeqLM.from_pretrained(folder)
    inputs, decoder_ids = make_inputs(), _decoder_ids(length=5)
    with torch.inference_mode():
        theirs = reference(**inputs, decoder_input_ids=decoder_ids[:, :3], use_cache=True)
        mine = model(**inputs, decoder_input_ids=decoder_ids[:, :3], use_cache=True)
        assert_close(mine.logits, theirs.logits, what="prefill logits")
        for i in (3, 4):
            theirs = reference(**inputs, decoder_input_ids=decoder_ids[:, i : i + 1], past_key_values=theirs.past_key_values)
            mine = model(**inputs, decoder_input_ids=decoder_ids[:, i : i + 1], past_key_values=mine.past_key_values,
                         use_cache=True)
            assert_close(mine.logits, theirs.logits, atol=1e-5, what=f"step {i} logits")
    assert mine.past_key_values.get_seq_length() == theirs.past_key_values.get_seq_length() == 5
    # keys and values of the self-attention cache are transformers' too
    for layer in range(2):
        assert_close(mine.past_key_values.self_attention_cache.keys[layer],
                     theirs.past_key_values.self_attention_cache.layers[layer].keys, atol=1e-5, what="cached keys")


def test_cached_decoding_with_a_padded_decoder_prompt(checkpoints):
    """decoder_attention_mask covers the cached tokens and the new one (transformers' convention)."""
    folder, reference = checkpoints["seq2seq-lm"]
    model = auto.AutoModelForSeq2SeqLM.from_pretrained(folder)
    inputs, decoder_ids = make_inputs(), _decoder_ids(length=4)
    mask = torch.ones_like(decoder_ids)
    mask[1, 1] = 0
    with torch.inference_mode():
        theirs = reference(**inputs, decoder_input_ids=decoder_ids[:, :3], decoder_attention_mask=mask[:, :3])
        mine = model(**inputs, decoder_input_ids=decoder_ids[:, :3], decoder_attention_mask=mask[:, :3], use_cache=True)
        theirs = reference(**inputs, decoder_input_ids=decoder_ids[:, 3:], decoder_attention_mask=mask,
                           past_key_values=theirs.past_key_values)
        mine = model(**inputs, decoder_input_ids=decoder_ids[:, 3:], decoder_attention_mask=mask,
                     past_key_values=mine.past_key_values, use_cache=True)
    assert_close(mine.logits, theirs.logits, atol=1e-5, what="logits after a masked decoder token")


def test_encoder_and_decoder_accessors(checkpoints):
    folder, reference = checkpoints["seq2seq-lm"]
    model = auto.AutoModelForSeq2SeqLM.from_pretrained(folder)
    inputs = make_inputs()
    with torch.inference_mode():
        encoded = model.get_encoder()(input_ids=inputs["input_ids"], attention_mask=inputs["attention_mask"])
        expected = reference.get_encoder()(input_ids=inputs["input_ids"], attention_mask=inputs["attention_mask"])
        with_states = model.get_encoder()(**inputs, output_hidden_states=True, return_dict=False)
    assert type(encoded).__name__ == "BaseModelOutput" and encoded.hidden_states is None
    assert_close(encoded.last_hidden_state, expected.last_hidden_state, what="encoder output")
    assert isinstance(with_states, tuple) and len(with_states[1]) == 3
    assert model.get_decoder() is model.model.decoder and model.get_encoder() is model.model.encoder
    with pytest.raises(TypeError, match="EncoderDecoderCache"):
        model(**inputs, decoder_input_ids=_decoder_ids(), past_key_values=[("k", "v")])
    with pytest.raises(ValueError, match="reach position 66"):
        _past_the_position_table(model, inputs)


def _past_the_position_table(model, inputs):
    out = model(**inputs, decoder_input_ids=torch.full((3, 60), 5), use_cache=True)
    model(**inputs, decoder_input_ids=torch.full((3, 6), 5), past_key_values=out.past_key_values, use_cache=True)
