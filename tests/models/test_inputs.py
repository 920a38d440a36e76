"""Bad input gets an error that says what was expected and how to fix it."""

from __future__ import annotations

import pytest
import torch

import hugkit.auto as auto
from conftest import ARCHS, MAX_POSITIONS, make_inputs, save_reference, tiny_config
from hugkit.models.bert import BertConfig, BertModel
from hugkit.models.roberta import RobertaConfig, RobertaModel


@pytest.fixture(scope="module", params=ARCHS)
def arch_and_model(request, tmp_path_factory):
    directory = tmp_path_factory.mktemp(request.param)
    save_reference(request.param, "base", directory)
    return request.param, auto.AutoModel.from_pretrained(directory)


def test_wrong_dtype(arch_and_model):
    arch, model = arch_and_model
    ids = make_inputs(arch)["input_ids"]
    with pytest.raises(TypeError, match=r"integer token ids.*torch.float32"):
        model(input_ids=ids.float())
    with pytest.raises(TypeError, match="return_tensors='pt'"):
        model(input_ids=ids.tolist())


def test_wrong_rank(arch_and_model):
    arch, model = arch_and_model
    ids = make_inputs(arch)["input_ids"]
    with pytest.raises(ValueError, match=r"\(batch_size, sequence_length\).*\(9,\).*input_ids\[None\]"):
        model(input_ids=ids[0])
    with pytest.raises(ValueError, match=r"attention_mask should have shape"):
        model(input_ids=ids, attention_mask=torch.ones(ids.shape[0], ids.shape[1] + 1, dtype=torch.long))
    embeds = model.get_input_embeddings()(ids)
    with pytest.raises(ValueError, match="inputs_embeds should have shape"):
        model(inputs_embeds=embeds[..., :-1])


def test_neither_or_both_inputs(arch_and_model):
    arch, model = arch_and_model
    ids = make_inputs(arch)["input_ids"]
    with pytest.raises(ValueError, match="exactly one of input_ids or inputs_embeds.*neither"):
        model(attention_mask=torch.ones_like(ids))
    with pytest.raises(ValueError, match="both"):
        model(input_ids=ids, inputs_embeds=model.get_input_embeddings()(ids))


def test_too_long(arch_and_model):
    arch, model = arch_and_model
    # RoBERTa positions start after pad_token_id (1), so two table rows are never real positions.
    limit = MAX_POSITIONS - 2 if "roberta" in arch else MAX_POSITIONS
    ok = torch.full((1, limit), 5)
    with torch.inference_mode():
        assert model(input_ids=ok).last_hidden_state.shape[1] == limit
    with pytest.raises(ValueError, match=rf"{limit + 1} tokens.*at most {limit}.*truncation=True"):
        model(input_ids=torch.full((1, limit + 1), 5))


def test_unsupported_variants_are_refused():
    small = dict(hidden_size=8, num_attention_heads=2, num_hidden_layers=1, intermediate_size=8, vocab_size=10)
    with pytest.raises(NotImplementedError, match="relative_key"):
        BertModel(BertConfig(position_embedding_type="relative_key", **small))
    with pytest.raises(NotImplementedError, match="decoder"):
        RobertaModel(RobertaConfig(is_decoder=True, **small))
    with pytest.raises(ValueError, match="divisible"):
        BertModel(BertConfig(**{**small, "num_attention_heads": 3}))


def test_question_answering_needs_two_labels():
    from hugkit.models.distilbert import DistilBertConfig, DistilBertForQuestionAnswering
    from hugkit.models.bert import BertForQuestionAnswering

    config = tiny_config("bert", "sequence-classification").to_dict()
    with pytest.raises(ValueError, match="num_labels must be 2; found 3"):
        BertForQuestionAnswering(BertConfig(**config))
    with pytest.raises(ValueError, match="num_labels must be 2"):
        DistilBertForQuestionAnswering(DistilBertConfig(num_labels=3))
