"""Tiny random checkpoints of every architecture surgery supports, built by transformers (the reference) and loaded
by hugkit through from_pretrained; plus helpers to run both and compare logits on real (unpadded) positions."""

from __future__ import annotations

import pytest
import torch

import transformers

VOCAB = 99
LAYERS = 3
ENCODERS = ("bert", "distilbert", "roberta", "xlm-roberta", "deberta-v2")
DECODERS = ("gpt2", "llama", "mistral", "qwen2", "qwen3")
ARCHS = ENCODERS + DECODERS
_GQA = dict(
    vocab_size=VOCAB, hidden_size=32, intermediate_size=37, num_hidden_layers=LAYERS, num_attention_heads=4,
    num_key_value_heads=2, max_position_embeddings=64, initializer_range=0.2, bos_token_id=1, eos_token_id=2,
    pad_token_id=0,
)


def reference_config(arch: str, **overrides):
    """3 layers, hidden 32, 4 heads (2 key/value heads for the Llama family), FFN 37."""
    if arch == "distilbert":
        return transformers.DistilBertConfig(**{**dict(
            vocab_size=VOCAB, dim=32, n_layers=LAYERS, n_heads=4, hidden_dim=37, max_position_embeddings=64,
        ), **overrides})
    if arch == "deberta-v2":  # relative attention with its own position projections (pruned with the heads)
        return transformers.DebertaV2Config(**{**dict(
            vocab_size=VOCAB, hidden_size=32, num_hidden_layers=LAYERS, num_attention_heads=4, intermediate_size=37,
            max_position_embeddings=64, relative_attention=True, pos_att_type=["p2c", "c2p"],
            max_relative_positions=16, share_att_key=False, position_biased_input=False, type_vocab_size=0,
        ), **overrides})
    if arch in ("bert", "roberta", "xlm-roberta"):
        config_class = {"bert": transformers.BertConfig, "roberta": transformers.RobertaConfig,
                        "xlm-roberta": transformers.XLMRobertaConfig}[arch]
        return config_class(**{**dict(
            vocab_size=VOCAB, hidden_size=32, num_hidden_layers=LAYERS, num_attention_heads=4, intermediate_size=37,
            max_position_embeddings=64, type_vocab_size=2 if arch == "bert" else 1,
        ), **overrides})
    if arch == "gpt2":
        return transformers.GPT2Config(**{**dict(
            vocab_size=VOCAB, n_embd=32, n_layer=LAYERS, n_head=4, n_inner=37, n_positions=64,
            initializer_range=0.2, bos_token_id=1, eos_token_id=2,
        ), **overrides})
    if arch == "llama":
        return transformers.LlamaConfig(**{**_GQA, **overrides})
    if arch == "mistral":
        return transformers.MistralConfig(**{**_GQA, "sliding_window": 4, **overrides})
    if arch == "qwen2":  # layers 1 and 2 slide (max_window_layers=1): dropping layer 0 changes the derived pattern
        return transformers.Qwen2Config(**{**_GQA, "use_sliding_window": True, "sliding_window": 3,
                                            "max_window_layers": 1, **overrides})
    if arch == "qwen3":
        return transformers.Qwen3Config(**{**_GQA, "head_dim": 16, **overrides})
    raise ValueError(arch)


REFERENCE_CLASS = {
    "bert": "BertForMaskedLM", "distilbert": "DistilBertForMaskedLM", "roberta": "RobertaForMaskedLM",
    "xlm-roberta": "XLMRobertaForMaskedLM", "deberta-v2": "DebertaV2ForMaskedLM", "gpt2": "GPT2LMHeadModel", "llama": "LlamaForCausalLM",
    "mistral": "MistralForCausalLM", "qwen2": "Qwen2ForCausalLM", "qwen3": "Qwen3ForCausalLM",
}


def build_reference(arch: str, seed: int = 0, **overrides):
    torch.manual_seed(seed)
    model = getattr(transformers, REFERENCE_CLASS[arch])(reference_config(arch, **overrides))
    with torch.no_grad():  # non-zero biases, so a bias sliced wrongly shows
        for name, param in model.named_parameters():
            if name.endswith("bias") and not param.any():
                param.normal_(0.0, 0.05)
    return model.eval()


def load_hugkit(folder):
    import hugkit

    config = transformers.AutoConfig.from_pretrained(folder)
    auto = hugkit.AutoModelForCausalLM if config.model_type in DECODERS else hugkit.AutoModelForMaskedLM
    return auto.from_pretrained(folder)


def make_inputs(arch: str) -> dict[str, torch.Tensor]:
    """Two rows; the second padded (on the right for encoders, the left for decoders)."""
    ids = torch.randint(3, VOCAB, (2, 8), generator=torch.Generator().manual_seed(1))
    mask = torch.ones_like(ids)
    if arch in DECODERS:
        mask[1, :3] = 0
    else:
        mask[1, 5:] = 0
    ids = ids.masked_fill(mask == 0, 1 if arch in ("roberta", "xlm-roberta") else 0)
    return {"input_ids": ids, "attention_mask": mask}


def logits_of(model, arch: str, inputs: dict[str, torch.Tensor]) -> torch.Tensor:
    """Logits at real positions only (decoders get explicit positions so both libraries agree on left padding)."""
    kwargs = dict(inputs)
    if arch in DECODERS:
        from hugkit.kv_cache import positions_from_mask

        kwargs["position_ids"] = positions_from_mask(inputs["attention_mask"])
    with torch.no_grad():
        logits = model(**kwargs).logits
    return logits[inputs["attention_mask"].bool()]


def assert_close(actual: torch.Tensor, expected: torch.Tensor, atol: float = 1e-4, what: str = "") -> None:
    assert actual.shape == expected.shape, f"{what}: shape {tuple(actual.shape)} != {tuple(expected.shape)}"
    diff = (actual.float() - expected.float()).abs().max().item()
    assert diff <= atol, f"{what}: max |diff| {diff:.3g} > {atol}"


@pytest.fixture(scope="session")
def checkpoint(tmp_path_factory):
    """arch -> (folder, transformers model): each tiny checkpoint is built once per session."""
    built = {}

    def get(arch: str):
        if arch not in built:
            model = build_reference(arch)
            folder = tmp_path_factory.mktemp(f"surgery-{arch}")
            model.save_pretrained(folder)
            built[arch] = (folder, model)
        return built[arch]

    return get


@pytest.fixture(autouse=True)
def _quiet_single_threaded():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    transformers.logging.set_verbosity_error()
    yield
    torch.set_num_threads(threads)
