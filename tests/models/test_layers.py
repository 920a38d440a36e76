"""hugkit.layers: activations, the padding mask, and the two attention paths."""

from __future__ import annotations

import pytest
import torch

from hugkit.layers import ACT2FN, attention, get_activation, padding_mask
import hugkit.auto as auto
from conftest import assert_close, make_inputs, save_reference


@pytest.mark.parametrize("name", sorted(ACT2FN))
def test_activations_match_transformers(name):
    from transformers.activations import ACT2FN as REFERENCE

    x = torch.linspace(-6, 6, 1001, dtype=torch.float32)
    assert torch.equal(get_activation(name)(x), REFERENCE[name](x)), name


def test_unknown_activation_is_a_clear_error():
    with pytest.raises(ValueError, match=r"Unknown activation 'gelu_wat'.*Supported: .*gelu_new"):
        get_activation("gelu_wat")
    from hugkit.models.bert import BertConfig, BertModel

    with pytest.raises(ValueError, match="gelu_wat"):
        BertModel(BertConfig(hidden_act="gelu_wat", hidden_size=8, num_attention_heads=2, num_hidden_layers=1,
                             intermediate_size=8, vocab_size=10))
    assert get_activation(torch.tanh) is torch.tanh  # a callable passes through


def test_padding_mask_fast_path_and_values():
    assert padding_mask(None, torch.float32) is None
    assert padding_mask(torch.ones(2, 5, dtype=torch.long), torch.float32) is None  # nothing padded: no mask at all
    keep = torch.tensor([[1, 1, 1, 0], [1, 0, 0, 0], [0, 0, 0, 0]])
    mask = padding_mask(keep, torch.float16)
    assert mask.shape == (3, 1, 1, 4) and mask.dtype == torch.float16
    low = torch.finfo(torch.float16).min
    assert mask[0, 0, 0].tolist() == [0, 0, 0, low]
    assert mask[1, 0, 0].tolist() == [0, low, low, low]
    assert mask[2, 0, 0].tolist() == [0, 0, 0, 0]  # an all-padding row is left unmasked: no NaN
    with pytest.raises(ValueError, match="batch_size, sequence_length"):
        padding_mask(torch.ones(2, 1, 1, 4), torch.float32)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_sdpa_and_eager_paths_agree(dtype):
    torch.manual_seed(0)
    q, k, v = (torch.randn(3, 4, 6, 8, dtype=dtype) for _ in range(3))
    mask = padding_mask(torch.tensor([[1] * 6, [1] * 4 + [0] * 2, [0] * 6]), dtype)
    fused, none = attention(q, k, v, mask)
    eager, probs = attention(q, k, v, mask, output_attentions=True)
    assert none is None and fused.shape == eager.shape == (3, 6, 32)
    atol = 1e-5 if dtype == torch.float32 else 2e-2
    assert_close(fused, eager, atol=atol, what="sdpa vs eager")
    assert torch.isfinite(fused).all() and torch.isfinite(eager).all()
    assert_close(probs.sum(-1), torch.ones(3, 4, 6), atol=1e-2, what="probabilities sum to one")
    assert probs[1, :, :, 4:].abs().max() == 0  # padded keys get no attention


@pytest.mark.parametrize("arch", ["bert", "roberta"])
def test_fully_padded_sequence_gives_no_nan(arch, tmp_path):
    """An empty row in a batch (all padding) must not poison the outputs with NaN, and leaves the others unchanged."""
    save_reference(arch, "sequence-classification", tmp_path)
    model = auto.AutoModelForSequenceClassification.from_pretrained(tmp_path)
    inputs = make_inputs(arch, lengths=(6, 4, 1))
    inputs["attention_mask"][2] = 0
    alone = {k: v[:2] for k, v in inputs.items()}
    for dtype in (torch.float32, torch.float16):
        model = model.to(dtype)
        with torch.inference_mode():
            logits = model(**inputs).logits
            hidden = model(**inputs, output_hidden_states=True, output_attentions=True)
            assert torch.isfinite(logits).all() and all(torch.isfinite(h).all() for h in hidden.hidden_states)
            assert_close(logits[:2], model(**alone).logits, atol=1e-5 if dtype == torch.float32 else 1e-2)
