"""Tiny random Llama-family checkpoints for the native decode step, built by transformers (the reference) and loaded
by hugkit through from_pretrained; a greedy driver for any runner.

Sizes are a multiple of 32 on every matmul input (hidden 64, intermediate 96) so every hugkit quantization scheme
can take every layer; the weights are large enough (initializer_range 0.2) that greedy tokens are well separated.
"""

import pytest
import torch

VOCAB = 128
TINY = dict(
    vocab_size=VOCAB, hidden_size=64, intermediate_size=96, num_hidden_layers=2, num_attention_heads=4,
    num_key_value_heads=2, max_position_embeddings=256, initializer_range=0.2, bos_token_id=1, eos_token_id=2,
    pad_token_id=0,
)
KINDS = ["llama", "llama3-rope", "mistral", "qwen2", "qwen3"]


def _reference(kind):
    # Same families as tests/generation/conftest.py's tiny models, at the sizes above.
    import transformers

    if kind == "llama":
        return transformers.LlamaForCausalLM(transformers.LlamaConfig(**TINY))
    if kind == "llama3-rope":  # tied embeddings, the optional biases, Llama-3 frequency scaling
        rope = {"rope_type": "llama3", "rope_theta": 500000.0, "factor": 8.0, "low_freq_factor": 1.0,
                "high_freq_factor": 4.0, "original_max_position_embeddings": 16}
        config = transformers.LlamaConfig(**TINY, rope_parameters=rope, tie_word_embeddings=True,
                                          attention_bias=True, mlp_bias=True)
        return transformers.LlamaForCausalLM(config)
    if kind == "mistral":  # a window much shorter than the 64 generated tokens
        return transformers.MistralForCausalLM(transformers.MistralConfig(**TINY, sliding_window=6))
    if kind == "qwen2":  # layer 1 slides; q/k/v biases
        config = transformers.Qwen2Config(**TINY, use_sliding_window=True, sliding_window=7, max_window_layers=1)
        return transformers.Qwen2ForCausalLM(config)
    if kind == "qwen3":  # per-head q/k norms, head_dim apart from hidden / heads
        return transformers.Qwen3ForCausalLM(transformers.Qwen3Config(**TINY, head_dim=32))
    raise ValueError(kind)


@pytest.fixture(scope="package", autouse=True)
def one_thread():
    """Tiny models: one thread avoids thread start-up and contention on a shared 2-core machine."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def tiny_llm(tmp_path_factory):
    """kind -> folder of a saved tiny checkpoint (built once per session)."""
    built = {}

    def get(kind):
        if kind not in built:
            torch.manual_seed(0)
            folder = tmp_path_factory.mktemp(f"native-{kind}")
            _reference(kind).eval().save_pretrained(folder)
            built[kind] = folder
        return built[kind]

    return get


@pytest.fixture
def batch():
    """A left-padded batch of 3 prompts (lengths 9, 6, 3)."""
    generator = torch.Generator().manual_seed(1)
    ids = torch.randint(3, VOCAB, (3, 9), generator=generator)
    mask = torch.ones_like(ids)
    mask[1, :3] = 0
    mask[2, :6] = 0
    return ids.masked_fill(mask == 0, 0), mask


def greedy(runner, steps: int, suppress: int | None = None):
    """(tokens (rows, steps), logits (steps, rows, vocab)) of greedy decoding driven through the runner interface;
    ``suppress``: a token never chosen (generate's min_new_tokens does that to EOS)."""

    def pick(logits):
        if suppress is not None:
            logits = logits.clone()
            logits[:, suppress] = -float("inf")
        return logits.argmax(-1)

    with torch.inference_mode():
        logits = runner.first_logits()
        tokens, all_logits = [], [logits]
        for _ in range(steps - 1):
            token = pick(logits)
            tokens.append(token)
            logits = runner.step(token)
            all_logits.append(logits)
        tokens.append(pick(logits))
    return torch.stack(tokens, 1), torch.stack(all_logits)
