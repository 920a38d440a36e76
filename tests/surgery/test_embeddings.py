"""resize_token_embeddings against transformers' own resize on the same tiny models: shapes, old rows kept, new
rows, ties, logits (new tokens included), config, save -> reload, padding to a multiple, bad input."""

from __future__ import annotations

import pytest
import torch
import transformers

from .conftest import DECODERS, assert_close, load_hugkit

TIED = {"bert": True, "distilbert": True, "gpt2": True, "llama": False}


def reference_from(folder, arch):
    auto = transformers.AutoModelForCausalLM if arch in DECODERS else transformers.AutoModelForMaskedLM
    return auto.from_pretrained(folder).eval()


def all_logits(model, ids):
    with torch.no_grad():
        return model(input_ids=ids).logits


@pytest.mark.parametrize("arch", list(TIED))
@pytest.mark.parametrize("size", [120, 90])
def test_resize_matches_transformers(arch, size, checkpoint, tmp_path):
    folder, _ = checkpoint(arch)
    model = load_hugkit(folder)
    reference = reference_from(folder, arch)
    old_rows = model.get_input_embeddings().weight.detach().clone()
    torch.manual_seed(0)
    reference.resize_token_embeddings(size)
    embeddings = model.resize_token_embeddings(size)

    assert embeddings is model.get_input_embeddings()
    assert embeddings.weight.shape == (size, 32) and embeddings.num_embeddings == size
    assert model.config.vocab_size == size
    kept = min(size, 99)
    assert torch.equal(embeddings.weight[:kept], old_rows[:kept])
    assert_close(embeddings.weight, reference.get_input_embeddings().weight, what="embedding rows")
    head = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else model.lm_head
    assert head.weight.shape == (size, 32)
    assert (head.weight is embeddings.weight) == TIED[arch]
    theirs = reference.get_output_embeddings()
    if theirs.bias is not None:
        assert_close(head.bias, theirs.bias, what="output bias")

    ids = torch.tensor([[5, 17, kept - 1, 3, 42]])
    expected = all_logits(reference, ids)
    got = all_logits(model, ids)
    assert got.shape == (1, 5, size)
    assert_close(got[..., :kept], expected[..., :kept], what="logits of the old tokens")
    # v5 samples new rows from N(mean, 1e-9 * covariance), hugkit takes the mean: ~1e-5 per weight, ~1e-4 in a logit.
    if size > kept:
        assert_close(got[..., kept:], expected[..., kept:], atol=1e-3, what="logits of the new tokens")

    model.save_pretrained(tmp_path)
    reloaded = load_hugkit(tmp_path)
    assert reloaded.config.vocab_size == size
    assert_close(all_logits(reloaded, ids), got, atol=1e-6, what="reloaded")


def test_bert_decoder_bias_stays_tied(checkpoint):
    folder, _ = checkpoint("bert")
    model = load_hugkit(folder)
    model.resize_token_embeddings(110)
    assert model.cls.predictions.decoder.bias is model.cls.predictions.bias
    assert model.cls.predictions.bias.shape == (110,)


def test_pad_to_multiple_of(checkpoint):
    folder, _ = checkpoint("gpt2")
    model = load_hugkit(folder)
    assert model.resize_token_embeddings(pad_to_multiple_of=64).weight.shape[0] == 128
    assert model.resize_token_embeddings(130, pad_to_multiple_of=64).weight.shape[0] == 192
    assert model.resize_token_embeddings().weight.shape[0] == 192  # nothing asked: unchanged
    assert model.config.vocab_size == 192


def test_without_mean_resizing_new_rows_are_normal(checkpoint):
    folder, _ = checkpoint("llama")
    model = load_hugkit(folder)
    old = model.get_input_embeddings().weight.detach().clone()
    torch.manual_seed(0)
    new = model.resize_token_embeddings(99 + 400, mean_resizing=False).weight.detach()
    assert torch.equal(new[:99], old)
    added = new[99:]
    assert abs(added.mean().item()) < 0.02 and 0.18 < added.std().item() < 0.22  # N(0, initializer_range=0.2)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"new_num_tokens": 0}, r"new_num_tokens should be a positive int"),
        ({"new_num_tokens": 12.5}, r"new_num_tokens should be a positive int"),
        ({"new_num_tokens": 100, "pad_to_multiple_of": 0}, r"pad_to_multiple_of should be a positive int"),
    ],
)
def test_bad_sizes(kwargs, message, checkpoint):
    folder, _ = checkpoint("distilbert")
    model = load_hugkit(folder)
    with pytest.raises(ValueError, match=message):
        model.resize_token_embeddings(**kwargs)
    assert model.config.vocab_size == 99
