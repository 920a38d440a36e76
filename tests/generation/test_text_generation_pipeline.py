"""pipeline("text-generation"): outputs equal to transformers' pipeline (greedy) on tiny random Llama checkpoints with
the GPT-2 and Llama-3 tokenizers: strings, lists, chats, return_full_text, batching, stop_sequence; stream=True;
the pipeline's generation defaults; clear errors."""

import pytest
import torch

import hugkit

from .text_models import llama_with_gpt2_tokenizer, llama_with_llama3_tokenizer

CHAT = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "What is the capital of France?"}]
CHAT2 = [{"role": "user", "content": "Héllo 🙂"}, {"role": "assistant", "content": "Bonjour, I am"}]


@pytest.fixture(scope="module")
def gpt2_pipes():
    import transformers

    folder = str(llama_with_gpt2_tokenizer())
    return hugkit.pipeline("text-generation", model=folder), transformers.pipeline("text-generation", model=folder)


@pytest.fixture(scope="module")
def llama3_pipes():
    import transformers

    folder = str(llama_with_llama3_tokenizer())
    return hugkit.pipeline("text-generation", model=folder), transformers.pipeline("text-generation", model=folder)


@pytest.mark.parametrize("pipes", ["gpt2_pipes", "llama3_pipes"])
def test_matches_transformers_pipeline(request, pipes):
    ours, reference = request.getfixturevalue(pipes)
    greedy = dict(max_new_tokens=8, do_sample=False)
    cases = [
        ("The capital of France is", {}),
        ("The capital of France is", dict(return_full_text=False)),
        (["Hello, my dog", "A much longer prompt with some more words in it"], {}),
        (CHAT, {}),
        (CHAT2, {}),  # the last message is the assistant's: it is continued
        (CHAT, dict(return_full_text=False)),
        ([CHAT, CHAT2], {}),
        ("Hello", dict(return_tensors=True)),
        ("Hello", dict(repetition_penalty=1.3, max_new_tokens=12)),
    ]
    for inputs, options in cases:
        kwargs = {**greedy, **options}
        assert ours(inputs, **kwargs) == reference(inputs, **kwargs), (inputs, options)


def test_batching_with_left_padding_matches_unbatched(gpt2_pipes):
    ours, reference = gpt2_pipes
    prompts = ["Hello, my dog", "A much longer prompt with some more words in it", "Short"]
    one_by_one = ours(prompts, max_new_tokens=6, do_sample=False)
    assert ours(prompts, max_new_tokens=6, do_sample=False, batch_size=3) == one_by_one
    assert one_by_one == reference(prompts, max_new_tokens=6, do_sample=False)


def test_stop_sequence_matches_transformers(gpt2_pipes):
    ours, reference = gpt2_pipes
    free = ours("The capital of France is", max_new_tokens=10, do_sample=False, return_full_text=False)[0]["generated_text"]
    stop = free.strip()[2:4]
    kwargs = dict(max_new_tokens=10, do_sample=False, stop_sequence=stop)
    got = ours("The capital of France is", **kwargs)
    assert got == reference("The capital of France is", **kwargs)
    assert len(got[0]["generated_text"]) < len("The capital of France is" + free)


def test_num_return_sequences_and_sampling(gpt2_pipes):
    ours, _ = gpt2_pipes
    torch.manual_seed(0)
    out = ours(["Hello", "Bye"], max_new_tokens=5, do_sample=True, num_return_sequences=3)
    assert [len(records) for records in out] == [3, 3]
    assert all(r["generated_text"].startswith("Hello") for r in out[0])
    torch.manual_seed(1)
    first = ours("Hello", max_new_tokens=5, do_sample=True, top_k=20)
    torch.manual_seed(1)
    assert ours("Hello", max_new_tokens=5, do_sample=True, top_k=20) == first


def test_pipeline_generation_defaults(gpt2_pipes):
    ours, _ = gpt2_pipes
    # transformers' pipeline defaults: max_new_tokens=256, do_sample=True, temperature=0.7 (when nothing sets them)
    defaults = ours._generate_kwargs({})
    assert defaults["max_new_tokens"] == 256 and defaults["do_sample"] is True and defaults["temperature"] == 0.7
    assert defaults["pad_token_id"] == ours.tokenizer.pad_token_id
    greedy = ours._generate_kwargs({"do_sample": False, "max_length": 30})
    assert "temperature" not in greedy and "max_new_tokens" not in greedy
    init_time = hugkit.pipeline("text-generation", model=ours.model, tokenizer=ours.tokenizer, max_new_tokens=3, do_sample=False)
    assert init_time("Hello") == ours("Hello", max_new_tokens=3, do_sample=False)


def test_stream_true(gpt2_pipes):
    ours, _ = gpt2_pipes
    full = ours("The capital of France is", max_new_tokens=12, do_sample=False, return_full_text=False)
    stream = ours("The capital of France is", stream=True, max_new_tokens=12, do_sample=False)
    assert "".join(stream) == full[0]["generated_text"]
    assert stream.result.finish_reason in ("length", "stop")
    chat = ours(CHAT, max_new_tokens=6, do_sample=False)[0]["generated_text"][-1]["content"]
    assert "".join(ours(CHAT, stream=True, max_new_tokens=6, do_sample=False)) == chat
    with pytest.raises(ValueError, match="one prompt"):
        ours(["a", "b"], stream=True)


def test_bad_input(gpt2_pipes):
    ours, _ = gpt2_pipes
    with pytest.raises(ValueError, match="empty"):
        ours("")
    with pytest.raises(ValueError, match="empty"):
        ours(["fine", ""])
    with pytest.raises(TypeError, match="max_new_tokenz"):
        ours("Hello", max_new_tokenz=5)
    with pytest.raises(TypeError, match="max_new_tokenz"):
        hugkit.pipeline("text-generation", model=ours.model, tokenizer=ours.tokenizer, max_new_tokenz=5)
    with pytest.raises(TypeError, match="role"):
        ours([{"role": None, "content": "hi"}])
    with pytest.raises(TypeError, match="Message 1"):
        ours([{"role": "user", "content": "hi"}, 5])
    with pytest.raises(ValueError, match="max_new_tokens"):
        ours("Hello", max_new_tokens=0)
    with pytest.raises(TypeError):
        ours(12)
    assert ours([]) == []
