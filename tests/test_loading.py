"""Weights loading: mmapped safetensors, shards, legacy .bin, strict key accounting, clear errors."""

import json
import logging

import pytest
import torch
import transformers

from hugkit import AutoModel, AutoModelForSequenceClassification
from hugkit.loading import CorruptCheckpointError

TINY = dict(vocab_size=99, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=37,
            max_position_embeddings=64)


@pytest.fixture(scope="module")
def reference():
    torch.manual_seed(0)
    return transformers.BertForSequenceClassification(transformers.BertConfig(num_labels=3, **TINY)).eval()


@pytest.fixture
def saved(reference, tmp_path):
    reference.save_pretrained(tmp_path)
    return tmp_path


INPUTS = dict(input_ids=torch.tensor([[2, 5, 7, 9, 3], [2, 8, 3, 0, 0]]), attention_mask=torch.tensor([[1] * 5, [1, 1, 1, 0, 0]]))


def logits_of(model):
    with torch.no_grad():
        return model(**INPUTS).logits


def test_safetensors_load_is_zero_copy_and_exact(saved, reference):
    model = AutoModelForSequenceClassification.from_pretrained(saved)
    assert torch.allclose(logits_of(model), logits_of(reference), atol=1e-5)
    weight = model.bert.encoder.layer[0].attention.self.query.weight
    file_size = (saved / "model.safetensors").stat().st_size
    assert weight.untyped_storage().nbytes() == file_size, "fp32 weights should be views of the mmapped file"


def test_sharded_checkpoint(reference, tmp_path):
    reference.save_pretrained(tmp_path, max_shard_size="20KB")
    assert (tmp_path / "model.safetensors.index.json").is_file()
    assert torch.allclose(logits_of(AutoModelForSequenceClassification.from_pretrained(tmp_path)), logits_of(reference), atol=1e-5)


def test_legacy_bin_checkpoint(reference, tmp_path):
    reference.config.save_pretrained(tmp_path)
    torch.save(reference.state_dict(), tmp_path / "pytorch_model.bin")
    assert torch.allclose(logits_of(AutoModelForSequenceClassification.from_pretrained(tmp_path)), logits_of(reference), atol=1e-5)


class _Exploit:
    def __reduce__(self):
        return (exec, ("import pathlib; pathlib.Path('PWNED').write_text('x')",))


def test_pickled_code_never_runs(reference, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    reference.config.save_pretrained(tmp_path)
    torch.save({"bert.embeddings.word_embeddings.weight": _Exploit()}, tmp_path / "pytorch_model.bin")
    with pytest.raises(CorruptCheckpointError, match="weights_only=True"):
        AutoModelForSequenceClassification.from_pretrained(tmp_path)
    assert not (tmp_path / "PWNED").exists()


def test_dtype_choices(saved):
    assert AutoModel.from_pretrained(saved).dtype == torch.float32
    assert AutoModel.from_pretrained(saved, dtype=torch.bfloat16).dtype == torch.bfloat16
    assert AutoModel.from_pretrained(saved, torch_dtype="float16").dtype == torch.float16
    half = AutoModel.from_pretrained(saved, dtype="float16")
    half.save_pretrained(saved / "half")
    assert json.loads((saved / "half" / "config.json").read_text())["dtype"] == "float16"
    assert AutoModel.from_pretrained(saved / "half", dtype="auto").dtype == torch.float16
    assert AutoModel.from_pretrained(saved / "half").dtype == torch.float32  # fp32 on CPU unless asked
    with pytest.raises(ValueError, match="Unsupported dtype 'float13'"):
        AutoModel.from_pretrained(saved, dtype="float13")


def test_config_overrides_at_load(saved):
    model = AutoModelForSequenceClassification.from_pretrained(saved, num_hidden_layers=1, output_hidden_states=True)
    assert len(model.bert.encoder.layer) == 1 and model.config.num_hidden_layers == 1
    assert len(model(**INPUTS).hidden_states) == 2
    relabelled = AutoModelForSequenceClassification.from_pretrained(saved, id2label={0: "a", 1: "b", 2: "c"})
    assert relabelled.config.label2id == {"a": 0, "b": 1, "c": 2}


@pytest.mark.parametrize("dtype", [None, torch.float16], ids=["same-dtype", "converted"])
def test_dropped_layers_are_never_read(saved, monkeypatch, dtype):
    """num_hidden_layers=1 at load: layer 1's tensors are not even read from the file, also when every tensor
    read would be converted to another dtype (converting reads the bytes)."""
    from hugkit import loading

    read: list[str] = []
    original = loading.iter_safetensors

    def recording(path, convert_to=None, skip=None):
        for name, tensor in original(path, convert_to, skip):
            read.append(name)
            yield name, tensor

    monkeypatch.setattr(loading, "iter_safetensors", recording)
    model = AutoModelForSequenceClassification.from_pretrained(saved, num_hidden_layers=1, dtype=dtype)
    assert read and not any(".layer.1." in name for name in read)
    assert any(".layer.0." in name for name in read) and len(model.bert.encoder.layer) == 1


def test_new_num_labels_needs_ignore_mismatched_sizes(saved, caplog):
    with pytest.raises(ValueError, match="(?s)size mismatches.*classifier.weight: checkpoint \\(3, 32\\) vs model \\(5, 32\\)"):
        AutoModelForSequenceClassification.from_pretrained(saved, num_labels=5)
    with caplog.at_level(logging.WARNING):
        model = AutoModelForSequenceClassification.from_pretrained(saved, num_labels=5, ignore_mismatched_sizes=True)
    assert model.classifier.weight.shape == (5, 32) and "newly initialised" in caplog.text


def _rewrite(folder, edit):
    from safetensors.torch import load_file, save_file

    state = load_file(folder / "model.safetensors")
    edit(state)
    save_file(state, folder / "model.safetensors", metadata={"format": "pt"})


def test_unexpected_and_missing_keys_are_listed(saved):
    _rewrite(saved, lambda s: s.update({"bert.encoder.layer.0.attention.self.extra": torch.zeros(2)}))
    with pytest.raises(ValueError, match="unexpected keys in the checkpoint: bert.encoder.layer.0.attention.self.extra"):
        AutoModelForSequenceClassification.from_pretrained(saved)
    _rewrite(saved, lambda s: [s.pop(k) for k in ["bert.encoder.layer.0.attention.self.extra", "bert.encoder.layer.1.output.dense.bias"]])
    with pytest.raises(ValueError, match="missing keys \\(not in the checkpoint\\): bert.encoder.layer.1.output.dense.bias"):
        AutoModelForSequenceClassification.from_pretrained(saved)


def test_other_heads_weights_are_dropped_quietly(saved):
    _rewrite(saved, lambda s: s.update({"cls.predictions.bias": torch.zeros(99)}))
    model = AutoModel.from_pretrained(saved)  # base model from a classifier checkpoint: classifier.* dropped too
    assert model.config.model_type == "bert"


def test_corrupted_and_truncated_files(saved):
    weights = saved / "model.safetensors"
    data = weights.read_bytes()
    weights.write_bytes(data[: len(data) // 2])
    with pytest.raises(CorruptCheckpointError, match="truncated"):
        AutoModel.from_pretrained(saved)
    weights.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json at all" + data[24:])
    with pytest.raises(CorruptCheckpointError, match="corrupted safetensors header"):
        AutoModel.from_pretrained(saved)
    weights.write_bytes(b"garbage")
    with pytest.raises(CorruptCheckpointError, match="too short"):
        AutoModel.from_pretrained(saved)


def test_missing_weights_file_is_named(saved):
    (saved / "model.safetensors").unlink()
    with pytest.raises(FileNotFoundError, match="expected model.safetensors or model.safetensors.index.json or pytorch_model.bin"):
        AutoModel.from_pretrained(saved)


def test_unsupported_architecture(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "mamba9"}))
    with pytest.raises(ValueError, match="model_type 'mamba9', which hugkit does not support yet. Supported model types: bart, bert"):
        AutoModel.from_pretrained(tmp_path)


def test_save_pretrained_round_trip_through_transformers(saved, reference, tmp_path):
    ours = AutoModelForSequenceClassification.from_pretrained(saved)
    ours.save_pretrained(tmp_path / "ours")
    back = transformers.AutoModelForSequenceClassification.from_pretrained(tmp_path / "ours").eval()
    assert torch.allclose(logits_of(back), logits_of(reference), atol=1e-6)
    config = json.loads((tmp_path / "ours" / "config.json").read_text())
    assert config["architectures"] == ["BertForSequenceClassification"] and config["model_type"] == "bert"


def test_architecture_without_the_task_head(tmp_path):
    transformers.GPT2LMHeadModel(transformers.GPT2Config(n_embd=32, n_layer=1, n_head=4, vocab_size=99)).save_pretrained(tmp_path)
    with pytest.raises(ValueError, match="hugkit has no sequence-classification head for 'gpt2' models \\(it has: base model"):
        AutoModelForSequenceClassification.from_pretrained(tmp_path)
