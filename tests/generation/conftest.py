"""Tiny random causal LMs built and saved by transformers (the reference), loaded by hugkit through from_pretrained."""

import pytest

VOCAB = 99
EOS = 98  # inside the vocabulary, so transformers does not warn; rarely produced by these random weights
LLAMA_TINY = dict(
    vocab_size=VOCAB, hidden_size=32, intermediate_size=37, num_hidden_layers=2, num_attention_heads=4,
    num_key_value_heads=2, max_position_embeddings=64, initializer_range=0.2, bos_token_id=1, eos_token_id=EOS,
    pad_token_id=0,
)


def _reference(kind):
    import transformers

    if kind == "gpt2":
        config = transformers.GPT2Config(
            vocab_size=VOCAB, n_embd=32, n_layer=2, n_head=4, n_positions=64, initializer_range=0.2,
            bos_token_id=1, eos_token_id=EOS,
        )
        return transformers.GPT2LMHeadModel(config)
    if kind == "llama":
        return transformers.LlamaForCausalLM(transformers.LlamaConfig(**LLAMA_TINY))
    if kind == "llama3-rope":
        # Llama-3 frequency scaling with a short "original" context so every band (kept, scaled, smoothed) occurs;
        # also tied embeddings and the optional biases.
        rope = {"rope_type": "llama3", "rope_theta": 500000.0, "factor": 8.0, "low_freq_factor": 1.0,
                "high_freq_factor": 4.0, "original_max_position_embeddings": 16}
        config = transformers.LlamaConfig(
            **LLAMA_TINY, rope_parameters=rope, tie_word_embeddings=True, attention_bias=True, mlp_bias=True
        )
        return transformers.LlamaForCausalLM(config)
    if kind == "llama-linear-rope":
        config = transformers.LlamaConfig(**LLAMA_TINY, rope_parameters={"rope_type": "linear", "factor": 2.0, "rope_theta": 10000.0})
        return transformers.LlamaForCausalLM(config)
    if kind == "mistral":
        return transformers.MistralForCausalLM(transformers.MistralConfig(**LLAMA_TINY, sliding_window=4))
    if kind == "qwen2":
        # Layer 1 slides (use_sliding_window with max_window_layers=1); q/k/v carry biases.
        config = transformers.Qwen2Config(**LLAMA_TINY, use_sliding_window=True, sliding_window=5, max_window_layers=1)
        return transformers.Qwen2ForCausalLM(config)
    if kind == "qwen3":
        # head_dim set apart from hidden_size // heads, as real Qwen3 configs do.
        return transformers.Qwen3ForCausalLM(transformers.Qwen3Config(**LLAMA_TINY, head_dim=16))
    raise ValueError(kind)


@pytest.fixture(scope="package", autouse=True)
def one_thread():
    """These models are tiny: one thread avoids thread start-up and contention on a shared 2-core machine."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


KINDS = ["gpt2", "llama", "llama3-rope", "llama-linear-rope", "mistral", "qwen2", "qwen3"]


@pytest.fixture(scope="session")
def tiny_causal_lm(tmp_path_factory):
    """kind -> (folder, transformers model); each checkpoint is built once per session."""
    import torch

    built = {}

    def get(kind):
        if kind not in built:
            torch.manual_seed(0)
            model = _reference(kind).eval()
            folder = tmp_path_factory.mktemp(f"tiny-{kind}")
            model.save_pretrained(folder)
            built[kind] = (folder, model)
        return built[kind]

    return get


@pytest.fixture
def prompts():
    """A left-padded batch of 3 prompts (lengths 10, 7, 4) and a single prompt."""
    import torch

    generator = torch.Generator().manual_seed(1)
    ids = torch.randint(2, VOCAB - 1, (3, 10), generator=generator)
    mask = torch.ones_like(ids)
    mask[1, :3] = 0
    mask[2, :6] = 0
    ids = ids.masked_fill(mask == 0, 0)
    return ids, mask
