"""transformers' generation docs, run as a user would with ``transformers`` replaced by ``hugkit``.

Pages: "Generation strategies" (generation_strategies.md), "Text generation" (llm_tutorial.md), "Generation features"
(generation_features.md), "Generation" (main_classes/text_generation.md: GenerationConfig and GenerationMixin) and
"Utilities for Generation" (internal/generation_utils.md: outputs, logits processors, stopping criteria, streamers).
Hub ids become the tiny local checkpoints of ``conftest.py``, ``"cuda"`` becomes ``"cpu"``; a snippet whose output is
random is seeded with ``set_seed`` in both libraries. Each test names its page and section, and compares hugkit with
transformers running the same snippet on the same weights.
"""

from __future__ import annotations

import asyncio
import io
import json
from contextlib import redirect_stdout
from threading import Thread

import numpy as np
import pytest
import torch

import hugkit
from tests.docs.snippets import device_map_auto, run_both

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")  # transformers' own length reminders


# --- generation_strategies.md: "Basic decoding methods" --------------------------------------------------------------


def test_basic_decoding_greedy_search(causal_lm):
    """generation_strategies.md, Basic decoding methods > Greedy search."""

    def snippet(lib):
        tokenizer = lib.AutoTokenizer.from_pretrained(causal_lm)
        inputs = tokenizer("Hugging Face is an open-source company", return_tensors="pt").to("cpu")
        model = lib.AutoModelForCausalLM.from_pretrained(causal_lm, dtype=torch.float16).to("cpu")
        # explicitly set to default length because Llama2 generation length is 4096
        outputs = model.generate(**inputs, max_new_tokens=20)
        return model.dtype, outputs.tolist(), tokenizer.batch_decode(outputs, skip_special_tokens=True)

    got, expected = run_both(snippet)
    assert got[0] == torch.float16
    assert got == expected


def test_basic_decoding_sampling(causal_lm):
    """generation_strategies.md, Basic decoding methods > Sampling (seeded)."""

    def snippet(lib):
        tokenizer = lib.AutoTokenizer.from_pretrained(causal_lm)
        inputs = tokenizer("Hugging Face is an open-source company", return_tensors="pt").to("cpu")
        model = lib.AutoModelForCausalLM.from_pretrained(causal_lm).to("cpu")
        lib.set_seed(42)
        outputs = model.generate(**inputs, max_new_tokens=50, do_sample=True, num_beams=1)
        return tokenizer.batch_decode(outputs, skip_special_tokens=True)

    got, expected = run_both(snippet)
    assert got == expected and len(got[0]) > len("Hugging Face is an open-source company")


def test_basic_decoding_beam_search(causal_lm):
    """generation_strategies.md, Basic decoding methods > Beam search."""

    def snippet(lib):
        tokenizer = lib.AutoTokenizer.from_pretrained(causal_lm)
        inputs = tokenizer("Hugging Face is an open-source company", return_tensors="pt").to("cpu")
        model = lib.AutoModelForCausalLM.from_pretrained(causal_lm).to("cpu")
        outputs = model.generate(**inputs, max_new_tokens=50, num_beams=2)
        return outputs.tolist(), tokenizer.batch_decode(outputs, skip_special_tokens=True)

    got, expected = run_both(snippet)
    assert got == expected


def test_beam_search_multinomial_sampling_on_t5(t5):
    """generation_strategies.md (v4 page), Beam-search multinomial sampling: t5-small, num_beams=5, do_sample=True."""

    def snippet(lib):
        prompt = "translate English to German: The house is wonderful."
        tokenizer = lib.AutoTokenizer.from_pretrained(t5)
        inputs = tokenizer(prompt, return_tensors="pt")
        model = lib.AutoModelForSeq2SeqLM.from_pretrained(t5)
        lib.set_seed(0)
        outputs = model.generate(**inputs, num_beams=5, do_sample=True)
        return outputs.tolist(), tokenizer.decode(outputs[0], skip_special_tokens=True)

    got, expected = run_both(snippet)
    assert got == expected


@pytest.mark.parametrize("kwargs, name", [
    ({"assistant_model": "assistant"}, "assistant_model"),  # Speculative decoding
    ({"assistant_model": "assistant", "prompt_lookup_num_tokens": 5}, "prompt_lookup_num_tokens"),  # Prompt lookup
    ({"assistant_early_exit": 4}, "assistant_early_exit"),  # Self-speculative decoding
    ({"assistant_model": "assistant", "assistant_tokenizer": "tok"}, "assistant_tokenizer"),  # Universal assisted
    ({"penalty_alpha": 0.6, "top_k": 4}, "penalty_alpha"),  # v4 page: Contrastive search
    ({"num_beams": 4, "num_beam_groups": 2, "diversity_penalty": 1.0}, "num_beam_groups"),  # v4: Diverse beam search
    ({"dola_layers": "high"}, "dola_layers"),  # v4 page: DoLa decoding
])
def test_advanced_decoding_methods_are_refused_by_name(causal_lm, kwargs, name):
    """generation_strategies.md, Advanced decoding methods (speculative, prompt lookup, self-speculative, universal
    assisted decoding) and the v4 page's contrastive search, diverse beam search, DoLa: out of hugkit's scope, each
    refused with an error naming the argument (never silently ignored)."""
    tokenizer = hugkit.AutoTokenizer.from_pretrained(causal_lm)
    model = hugkit.AutoModelForCausalLM.from_pretrained(causal_lm)
    if "assistant_model" in kwargs:
        kwargs = {**kwargs, "assistant_model": hugkit.AutoModelForCausalLM.from_pretrained(causal_lm)}
    inputs = tokenizer("Hugging Face is an open-source company", return_tensors="pt")
    with pytest.raises(NotImplementedError, match=f"does not support .*{name}"):
        model.generate(**inputs, max_new_tokens=20, **kwargs)


def test_speculative_decoding_in_a_pipeline_is_refused(causal_lm):
    """generation_strategies.md, Speculative decoding: pipeline(..., assistant_model=...)."""
    with pytest.raises(NotImplementedError, match="does not support assistant_model"):
        hugkit.pipeline("text-generation", model=causal_lm, assistant_model=causal_lm, dtype=torch.bfloat16)


def test_custom_generation_methods(causal_lm):
    """generation_strategies.md, Custom generation methods: ``custom_generate`` (a Hub repository's code, or a
    callable) is refused with a clear error; hugkit never runs code from a checkpoint. The documented callable
    fails in transformers 5 too (its loop receives attention_mask twice). The custom ``generate(model, input_ids,
    ...)`` function of "generate.py" runs on hugkit's model like on transformers'."""
    model = hugkit.AutoModelForCausalLM.from_pretrained(causal_lm)
    tokenizer = hugkit.AutoTokenizer.from_pretrained(causal_lm)
    inputs = tokenizer(["The quick brown"], return_tensors="pt")
    with pytest.raises(NotImplementedError, match="custom_generate.*never runs code from a checkpoint"):
        model.generate(**inputs, custom_generate="transformers-community/custom_generate_example",
                       trust_remote_code=True)

    def custom_loop(model, input_ids, attention_mask, logits_processor, stopping_criteria, generation_config,
                    **model_kwargs):
        raise AssertionError("not called")

    with pytest.raises(NotImplementedError, match="custom_generate"):
        model.generate(**inputs, custom_generate=custom_loop, max_new_tokens=10)
    import transformers

    reference = transformers.AutoModelForCausalLM.from_pretrained(causal_lm)
    with pytest.raises(TypeError, match="multiple values for keyword argument 'attention_mask'"):
        reference.generate(**inputs, custom_generate=custom_loop, max_new_tokens=10)

    def snippet(lib):
        def generate(model, input_ids, generation_config=None, left_padding=None, **kwargs):
            generation_config = generation_config or model.generation_config
            cur_length = input_ids.shape[1]
            max_length = generation_config.max_length or cur_length + generation_config.max_new_tokens
            while cur_length < max_length:  # Simple greedy decoding loop
                logits = model(input_ids).logits
                next_token_logits = logits[:, -1, :]
                next_tokens = torch.argmax(next_token_logits, dim=-1)
                input_ids = torch.cat((input_ids, next_tokens[:, None]), dim=-1)
                cur_length += 1
            return input_ids

        model = lib.AutoModelForCausalLM.from_pretrained(causal_lm)
        tokenizer = lib.AutoTokenizer.from_pretrained(causal_lm)
        inputs = tokenizer(["The quick brown"], return_tensors="pt")
        gen_out = generate(model, inputs["input_ids"], lib.GenerationConfig(max_new_tokens=6))
        return gen_out.tolist(), model.generate(**inputs, max_new_tokens=6).tolist()

    got, expected = run_both(snippet)
    assert got == expected and got[0] == got[1]  # the hand-written loop is greedy decoding


# --- llm_tutorial.md --------------------------------------------------------------------------------------------------


def test_llm_tutorial_default_generate(causal_lm):
    """llm_tutorial.md, Default generate: padding_side="left", generate with the defaults, batch_decode; and a
    batch of two prompts padded with the EOS token."""

    def snippet(lib):
        model = lib.AutoModelForCausalLM.from_pretrained(causal_lm, **device_map_auto(lib))
        tokenizer = lib.AutoTokenizer.from_pretrained(causal_lm, padding_side="left")
        model_inputs = tokenizer(["A list of colors: red, blue"], return_tensors="pt").to("cpu")
        generated_ids = model.generate(**model_inputs)
        single = tokenizer.batch_decode(generated_ids, skip_special_tokens=True)[0]
        tokenizer.pad_token = tokenizer.eos_token  # Most LLMs don't have a pad token by default
        model_inputs = tokenizer(["A list of colors: red, blue", "Portugal is"], return_tensors="pt", padding=True)
        generated_ids = model.generate(**model_inputs)
        return single, generated_ids.shape[1] - model_inputs["input_ids"].shape[1], generated_ids.tolist(), \
            tokenizer.batch_decode(generated_ids, skip_special_tokens=True)

    got, expected = run_both(snippet)
    assert got == expected
    assert got[1] == 20  # up to 20 new tokens by default


def test_llm_tutorial_generation_configuration(causal_lm):
    """llm_tutorial.md, Generation configuration: ``model.generation_config`` shows only the values set; settings
    passed to generate override it (beam search sampling, seeded)."""

    def snippet(lib):
        model = lib.AutoModelForCausalLM.from_pretrained(causal_lm, **device_map_auto(lib))
        shown = repr(model.generation_config)
        tokenizer = lib.AutoTokenizer.from_pretrained(causal_lm)
        inputs = tokenizer(["A list of colors: red, blue"], return_tensors="pt")
        lib.set_seed(0)
        outputs = model.generate(**inputs, num_beams=4, do_sample=True)  # enable beam search sampling strategy
        return shown, outputs.tolist()

    got, expected = run_both(snippet)
    assert got == expected
    assert got[0].startswith("GenerationConfig {") and '"eos_token_id": 50256' in got[0]


def test_llm_tutorial_saving_a_generation_config(causal_lm, t5, tmp_path):
    """llm_tutorial.md, Generation configuration > Saving: one config saved as the model's (push_to_hub is a Hub
    upload, which hugkit refuses with the way to do it), and a named translation config saved next to it, loaded back
    with from_pretrained(config_file_name=...) and used for generation (t5-small)."""
    model = hugkit.AutoModelForCausalLM.from_pretrained(causal_lm)
    generation_config = hugkit.GenerationConfig(
        max_new_tokens=50, do_sample=True, top_k=50, eos_token_id=model.config.eos_token_id
    )
    with pytest.raises(NotImplementedError, match="does not upload to the Hugging Face Hub.*upload_folder"):
        generation_config.save_pretrained(tmp_path / "my_model", push_to_hub=True)
    generation_config.save_pretrained(tmp_path / "my_model")
    saved = json.loads((tmp_path / "my_model" / "generation_config.json").read_text())
    assert saved == {"max_new_tokens": 50, "do_sample": True, "top_k": 50, "eos_token_id": 50256}

    def snippet(lib):
        folder = tmp_path / lib.__name__
        tokenizer = lib.AutoTokenizer.from_pretrained(t5)
        model = lib.AutoModelForSeq2SeqLM.from_pretrained(t5)
        translation_generation_config = lib.GenerationConfig(
            num_beams=4,
            early_stopping=True,
            decoder_start_token_id=0,
            eos_token_id=model.config.eos_token_id,
            pad_token=model.config.pad_token_id,
        )
        translation_generation_config.save_pretrained(folder, config_file_name="translation_generation_config.json")
        generation_config = lib.GenerationConfig.from_pretrained(folder, config_file_name="translation_generation_config.json")
        inputs = tokenizer("translate English to French: Configuration files are easy to use!", return_tensors="pt")
        outputs = model.generate(**inputs, generation_config=generation_config)
        saved = json.loads((folder / "translation_generation_config.json").read_text())
        saved.pop("transformers_version", None)
        return saved, generation_config.pad_token, outputs.tolist(), tokenizer.batch_decode(outputs, skip_special_tokens=True)

    got, expected = run_both(snippet)
    assert got == expected
    assert got[0]["pad_token"] == 0  # an unknown field is kept, saved and read back, as transformers does


def test_llm_tutorial_pitfall_output_length(causal_lm):
    """llm_tutorial.md, Pitfalls > Wrong output length: 20 new tokens by default, max_new_tokens=50 when set."""

    def snippet(lib):
        model = lib.AutoModelForCausalLM.from_pretrained(causal_lm)
        tokenizer = lib.AutoTokenizer.from_pretrained(causal_lm)
        model_inputs = tokenizer(["A sequence of numbers: 1, 2"], return_tensors="pt").to("cpu")
        default = model.generate(**model_inputs)
        longer = model.generate(**model_inputs, max_new_tokens=50)
        length = model_inputs["input_ids"].shape[1]
        return default.shape[1] - length, longer.shape[1] - length, tokenizer.batch_decode(longer, skip_special_tokens=True)[0]

    got, expected = run_both(snippet)
    assert got == expected and got[:2] == (20, 50)


def test_llm_tutorial_pitfall_decoding_strategy(causal_lm):
    """llm_tutorial.md, Pitfalls > Wrong decoding strategy: greedy, then multinomial sampling (set_seed(42))."""

    def snippet(lib):
        lib.set_seed(42)
        model = lib.AutoModelForCausalLM.from_pretrained(causal_lm)
        tokenizer = lib.AutoTokenizer.from_pretrained(causal_lm)
        model_inputs = tokenizer(["I am a cat."], return_tensors="pt").to("cpu")
        greedy = tokenizer.batch_decode(model.generate(**model_inputs), skip_special_tokens=True)[0]
        sampled = tokenizer.batch_decode(model.generate(**model_inputs, do_sample=True), skip_special_tokens=True)[0]
        return greedy, sampled

    got, expected = run_both(snippet)
    assert got == expected and got[0] != got[1]


def test_llm_tutorial_pitfall_padding_side(causal_lm):
    """llm_tutorial.md, Pitfalls > Wrong padding side: right-padded prompts, which transformers continues into
    garbage after a warning, get a clear error naming the fix; left padding generates like transformers."""
    tokenizer = hugkit.AutoTokenizer.from_pretrained(causal_lm)
    tokenizer.pad_token = tokenizer.eos_token
    model = hugkit.AutoModelForCausalLM.from_pretrained(causal_lm)
    model_inputs = tokenizer(["1, 2, 3", "A, B, C, D, E"], padding=True, return_tensors="pt").to("cpu")
    with pytest.raises(ValueError, match="right-padded.*padding_side = 'left'"):
        model.generate(**model_inputs)

    def snippet(lib):
        tokenizer = lib.AutoTokenizer.from_pretrained(causal_lm, padding_side="left")
        tokenizer.pad_token = tokenizer.eos_token
        model = lib.AutoModelForCausalLM.from_pretrained(causal_lm)
        model_inputs = tokenizer(["1, 2, 3", "A, B, C, D, E"], padding=True, return_tensors="pt").to("cpu")
        generated_ids = model.generate(**model_inputs)
        return generated_ids.tolist(), tokenizer.batch_decode(generated_ids, skip_special_tokens=True)[0]

    got, expected = run_both(snippet)
    assert got == expected


def test_llm_tutorial_pitfall_prompt_format(causal_lm):
    """llm_tutorial.md, Pitfalls > Wrong prompt format: a plain prompt, then the chat template (sampled, seeded).

    As written, the chat snippet reads ``model_inputs.shape[1]``; transformers 5's apply_chat_template returns the
    tokenizer's dict output, so both libraries stop there with AttributeError. The same code with
    ``model_inputs["input_ids"]`` and ``generate(**model_inputs)`` is compared."""
    messages = [
        {"role": "system", "content": "You are a friendly chatbot who always responds in the style of a pirate"},
        {"role": "user", "content": "How many cats does it take to change a light bulb?"},
    ]

    def as_written(lib):
        tokenizer = lib.AutoTokenizer.from_pretrained(causal_lm)
        model_inputs = tokenizer.apply_chat_template(messages, add_generation_prompt=True, return_tensors="pt")
        try:
            model_inputs.shape[1]
        except AttributeError as error:
            return type(error).__name__
        return "ran"

    assert run_both(as_written) == ("AttributeError", "AttributeError")

    def snippet(lib):
        tokenizer = lib.AutoTokenizer.from_pretrained(causal_lm)
        model = lib.AutoModelForCausalLM.from_pretrained(causal_lm, **device_map_auto(lib))
        prompt = """How many cats does it take to change a light bulb? Reply as a pirate."""
        model_inputs = tokenizer([prompt], return_tensors="pt").to("cpu")
        input_length = model_inputs.input_ids.shape[1]
        generated_ids = model.generate(**model_inputs, max_new_tokens=50)
        plain = tokenizer.batch_decode(generated_ids[:, input_length:], skip_special_tokens=True)[0]
        model_inputs = tokenizer.apply_chat_template(messages, add_generation_prompt=True, return_tensors="pt").to("cpu")
        input_length = model_inputs["input_ids"].shape[1]
        lib.set_seed(0)
        generated_ids = model.generate(**model_inputs, do_sample=True, max_new_tokens=50)
        chat = tokenizer.batch_decode(generated_ids[:, input_length:], skip_special_tokens=True)[0]
        return plain, model_inputs["input_ids"].tolist(), chat

    got, expected = run_both(snippet)
    assert got == expected
    with pytest.raises(TypeError, match=r"tokenizer's whole output.*model.generate\(\*\*inputs\)"):
        model = hugkit.AutoModelForCausalLM.from_pretrained(causal_lm)
        tokenizer = hugkit.AutoTokenizer.from_pretrained(causal_lm)
        model.generate(tokenizer.apply_chat_template(messages, add_generation_prompt=True, return_tensors="pt"))


def test_llm_tutorial_quantized_loading_is_refused():
    """llm_tutorial.md, Default generate: ``BitsAndBytesConfig(load_in_4bit=True)`` is a quantization backend hugkit
    does not use; the import names hugkit's own quantization instead."""
    with pytest.raises(ImportError, match="hugkit has no BitsAndBytesConfig.*quantize_"):
        from hugkit import BitsAndBytesConfig  # noqa: F401


# --- generation_features.md -------------------------------------------------------------------------------------------


def test_generation_features_streaming(causal_lm):
    """generation_features.md, Streaming: TextStreamer prints the text as it is generated (the same pieces as
    transformers'), and any class with put() and end() can be the streamer."""

    def snippet(lib):
        tokenizer = lib.AutoTokenizer.from_pretrained(causal_lm)
        model = lib.AutoModelForCausalLM.from_pretrained(causal_lm)
        inputs = tokenizer(["The secret to baking a good cake is "], return_tensors="pt")
        streamer = lib.TextStreamer(tokenizer)
        printed = io.StringIO()
        with redirect_stdout(printed):
            _ = model.generate(**inputs, streamer=streamer, max_new_tokens=20)

        class Recorder:  # "compatible with any class with a put and end method"
            def __init__(self):
                self.calls = []

            def put(self, value):
                self.calls.append(value.tolist())

            def end(self):
                self.calls.append("end")

        recorder = Recorder()
        sequences = model.generate(**inputs, streamer=recorder, max_new_tokens=5)
        return printed.getvalue(), recorder.calls, sequences.tolist()

    got, expected = run_both(snippet)
    assert got == expected
    assert got[0].startswith("The secret to baking a good cake is ") and got[0].endswith("\n")
    calls, sequences = got[1], got[2]
    prompt_length = len(calls[0][0])
    assert calls[0] == [sequences[0][:prompt_length]] and calls[-1] == "end"  # the prompt first, then each token
    assert [token for call in calls[1:-1] for token in call] == sequences[0][prompt_length:]


def test_generation_features_watermarking_is_refused(causal_lm):
    """generation_features.md, Watermarking: out of hugkit's scope; the classes and the generate argument say so."""
    with pytest.raises(ImportError, match="hugkit has no WatermarkingConfig: hugkit's generate does not watermark"):
        from hugkit import WatermarkingConfig  # noqa: F401
    with pytest.raises(ImportError, match="hugkit has no WatermarkDetector"):
        from hugkit import WatermarkDetector  # noqa: F401
    model = hugkit.AutoModelForCausalLM.from_pretrained(causal_lm)
    tokenizer = hugkit.AutoTokenizer.from_pretrained(causal_lm)
    tokenizer.pad_token_id = tokenizer.eos_token_id
    tokenizer.padding_side = "left"
    inputs = tokenizer(["This is the beginning of a long story", "Alice and Bob are"], padding=True, return_tensors="pt")
    with pytest.raises(NotImplementedError, match="watermarking_config"):
        model.generate(**inputs, watermarking_config={"bias": 2.5, "seeding_scheme": "selfhash"}, do_sample=False,
                       max_length=20)


# --- main_classes/text_generation.md: GenerationConfig ----------------------------------------------------------------


def test_generation_config_from_pretrained(causal_lm, tmp_path):
    """main_classes/text_generation.md, GenerationConfig.from_pretrained: load a checkpoint's config, save and
    reload it, named files (config_file_name positional), and overrides with return_unused_kwargs."""

    def snippet(lib):
        folder = tmp_path / lib.__name__ / "saved_model"
        generation_config = lib.GenerationConfig.from_pretrained(causal_lm)
        generation_config.save_pretrained(folder)
        generation_config = lib.GenerationConfig.from_pretrained(folder)
        generation_config.save_pretrained(folder, config_file_name="my_configuration.json")
        generation_config = lib.GenerationConfig.from_pretrained(folder, "my_configuration.json")
        generation_config, unused_kwargs = lib.GenerationConfig.from_pretrained(
            causal_lm, top_k=1, foo=False, do_sample=True, return_unused_kwargs=True
        )
        return (generation_config.top_k, unused_kwargs, hasattr(generation_config, "foo"),
                generation_config.eos_token_id, generation_config.get_generation_mode().value)

    got, expected = run_both(snippet)
    # the checkpoint's file was made from the model config (_from_model_config): unknown names stay unused
    assert got == expected == (1, {"foo": False}, False, 50256, "sample")


def test_generation_config_keeps_a_checkpoints_own_fields(tmp_path):
    """main_classes/text_generation.md, GenerationConfig: fields it does not define (Whisper's lang_to_id,
    task_to_id, alignment_heads, no_timestamps_token_id, is_multilingual) are attributes, saved and loaded back;
    update() sets only fields the config has and returns the others."""
    whisper_fields = {
        "lang_to_id": {"<|en|>": 50259, "<|fr|>": 50265}, "task_to_id": {"transcribe": 50360, "translate": 50359},
        "alignment_heads": [[2, 0], [3, 1]], "no_timestamps_token_id": 50364, "is_multilingual": True,
    }

    def snippet(lib):
        folder = tmp_path / lib.__name__
        config = lib.GenerationConfig(decoder_start_token_id=50258, **whisper_fields)
        config.save_pretrained(folder)
        loaded = lib.GenerationConfig.from_pretrained(folder)
        unused = loaded.update(task_to_id={"transcribe": 1}, not_a_field=3)
        values = {name: getattr(loaded, name) for name in whisper_fields}
        saved = json.loads((folder / "generation_config.json").read_text())
        saved.pop("transformers_version", None)
        return values, unused, hasattr(loaded, "not_a_field"), saved, repr(config)

    got, expected = run_both(snippet)
    assert got == expected
    assert got[0]["lang_to_id"] == whisper_fields["lang_to_id"] and got[0]["task_to_id"] == {"transcribe": 1}
    assert got[1] == {"not_a_field": 3} and got[2] is False


# --- internal/generation_utils.md ----------------------------------------------------------------------------------------


def test_generate_outputs(causal_lm):
    """internal/generation_utils.md, Generate Outputs: return_dict_in_generate with output_scores gives a
    GenerateDecoderOnlyOutput; absent fields are None and skipped by index and key."""

    def snippet(lib):
        tokenizer = lib.GPT2Tokenizer.from_pretrained(causal_lm)
        model = lib.AutoModelForCausalLM.from_pretrained(causal_lm)
        inputs = tokenizer("Hello, my dog is cute and ", return_tensors="pt")
        generation_output = model.generate(**inputs, return_dict_in_generate=True, output_scores=True)
        first_two = generation_output[:2]
        return (type(generation_output).__name__, generation_output.attentions, generation_output.hidden_states,
                first_two[0].tolist(), [s.tolist() for s in first_two[1]],
                generation_output.sequences.tolist(), "sequences" in generation_output, "scores" in generation_output)

    got, expected = run_both(snippet)
    assert got[:3] == expected[:3] == ("GenerateDecoderOnlyOutput", None, None)
    assert got[3] == expected[3] == got[5]
    np.testing.assert_allclose(np.array(got[4]), np.array(expected[4]), atol=1e-4)
    assert got[6:] == expected[6:] == (True, True)


def test_repetition_penalty_processor(causal_lm):
    """internal/generation_utils.md, RepetitionPenaltyLogitsProcessor's example: generate(repetition_penalty=1.1),
    then the processor with prompt_ignore_length passed as a custom logits processor."""

    def snippet(lib):
        model = lib.AutoModelForCausalLM.from_pretrained(causal_lm)
        tokenizer = lib.AutoTokenizer.from_pretrained(causal_lm)
        inputs = tokenizer(["I'm not going to"], return_tensors="pt")
        summary_ids = model.generate(**inputs)
        penalized_ids = model.generate(**inputs, repetition_penalty=1.1)
        rep_pen_processor = lib.RepetitionPenaltyLogitsProcessor(
            penalty=1.1,
            prompt_ignore_length=inputs["input_ids"].shape[-1]
        )
        custom_ids = model.generate(**inputs, logits_processor=[rep_pen_processor])
        return [tokenizer.batch_decode(ids, skip_special_tokens=True)[0] for ids in (summary_ids, penalized_ids, custom_ids)]

    got, expected = run_both(snippet)
    assert got == expected and got[0] != got[1]


def test_custom_logits_processor_and_stopping_criteria(causal_lm):
    """internal/generation_utils.md, LogitsProcessor / LogitsProcessorList / StoppingCriteria / StoppingCriteriaList:
    user classes written against transformers' protocol (``__call__(input_ids, scores)``; ``__call__(input_ids,
    scores, **kwargs)`` returning one bool per row) plug into generate; the lists apply and combine them."""

    def snippet(lib):
        class BanToken(lib.LogitsProcessor):
            def __init__(self, token_id):
                self.token_id = token_id

            def __call__(self, input_ids, scores):
                scores[:, self.token_id] = -float("inf")
                return scores

        class StopAfterToken(lib.StoppingCriteria):
            def __init__(self, token_id):
                self.token_id = token_id

            def __call__(self, input_ids, scores, **kwargs):
                return input_ids[:, -1] == self.token_id

        tokenizer = lib.AutoTokenizer.from_pretrained(causal_lm, padding_side="left")
        tokenizer.pad_token = tokenizer.eos_token
        model = lib.AutoModelForCausalLM.from_pretrained(causal_lm)
        inputs = tokenizer(["A list of colors: red, blue", "Portugal is"], return_tensors="pt", padding=True)
        plain = model.generate(**inputs, max_new_tokens=12)
        banned = int(plain[0, inputs["input_ids"].shape[1]])
        stop_at = int(plain[1, inputs["input_ids"].shape[1] + 2])
        processors = lib.LogitsProcessorList([BanToken(banned)])
        criteria = lib.StoppingCriteriaList([StopAfterToken(stop_at)])
        out = model.generate(**inputs, max_new_tokens=12, logits_processor=processors, stopping_criteria=criteria)
        scores = torch.zeros(2, model.config.vocab_size)
        return out.tolist(), bool((out[:, inputs["input_ids"].shape[1]:] == banned).any()), \
            processors(inputs["input_ids"], scores)[:, banned].tolist(), \
            criteria(torch.tensor([[1, stop_at], [stop_at, 1]]), None).tolist()

    got, expected = run_both(snippet)
    assert got == expected
    assert got[1] is False and got[2] == [-float("inf")] * 2 and got[3] == [True, False]


def test_stop_string_criteria(causal_lm):
    """internal/generation_utils.md, StopStringCriteria's example: generate(stop_strings=[...], tokenizer=tokenizer)
    halts after the string is produced (here a word the tiny model emits)."""

    def snippet(lib):
        tokenizer = lib.AutoTokenizer.from_pretrained(causal_lm)
        model = lib.AutoModelForCausalLM.from_pretrained(causal_lm)
        inputs = tokenizer("The biggest states in the USA by land area:", return_tensors="pt")
        gen_out = model.generate(**inputs)
        full = tokenizer.batch_decode(gen_out, skip_special_tokens=True)[0]
        stop = full.split()[-4]
        gen_out = model.generate(**inputs, stop_strings=[stop], tokenizer=tokenizer)
        return full, tokenizer.batch_decode(gen_out, skip_special_tokens=True)[0], stop

    got, expected = run_both(snippet)
    assert got == expected
    assert got[1].endswith(got[2]) and len(got[1]) < len(got[0])


def test_text_iterator_streamer_in_a_thread(causal_lm):
    """internal/generation_utils.md, TextIteratorStreamer's example: generate in a Thread, iterate the text."""

    def snippet(lib):
        tok = lib.AutoTokenizer.from_pretrained(causal_lm)
        model = lib.AutoModelForCausalLM.from_pretrained(causal_lm)
        inputs = tok(["An increasing sequence: one,"], return_tensors="pt")
        streamer = lib.TextIteratorStreamer(tok)
        # Run the generation in a separate thread, so that we can fetch the generated text in a non-blocking way.
        generation_kwargs = dict(inputs, streamer=streamer, max_new_tokens=20)
        thread = Thread(target=model.generate, kwargs=generation_kwargs)
        thread.start()
        pieces = []
        generated_text = ""
        for new_text in streamer:
            pieces.append(new_text)
            generated_text += new_text
        thread.join()
        return pieces, generated_text

    got, expected = run_both(snippet)
    assert got == expected and got[1].startswith("An increasing sequence: one,")


def test_async_text_iterator_streamer(causal_lm):
    """internal/generation_utils.md, AsyncTextIteratorStreamer's example: created inside a coroutine, generate in a
    Thread, ``async for`` the text."""

    def snippet(lib):
        tok = lib.AutoTokenizer.from_pretrained(causal_lm)
        model = lib.AutoModelForCausalLM.from_pretrained(causal_lm)
        inputs = tok(["An increasing sequence: one,"], return_tensors="pt")

        async def main():
            # Important: AsyncTextIteratorStreamer must be initialized inside a coroutine!
            streamer = lib.AsyncTextIteratorStreamer(tok)
            generation_kwargs = dict(inputs, streamer=streamer, max_new_tokens=20)
            thread = Thread(target=model.generate, kwargs=generation_kwargs)
            thread.start()
            pieces = []
            async for new_text in streamer:
                pieces.append(new_text)
            thread.join()
            return pieces

        return asyncio.run(main())

    got, expected = run_both(snippet)
    assert got == expected and "".join(got).startswith("An increasing sequence: one,")
    with pytest.raises(RuntimeError, match="inside a coroutine"):
        hugkit.AsyncTextIteratorStreamer(hugkit.AutoTokenizer.from_pretrained(causal_lm))


def test_compute_transition_scores(causal_lm):
    """main_classes/text_generation.md, GenerationMixin.compute_transition_scores' examples: per-token
    log-probabilities of a greedy generation, and beam search's sequence scores rebuilt from the transition scores.
    As written, example 2 reads ``model.generation_config.length_penalty``, which transformers 5 leaves unset
    (None), so ``output_length ** length_penalty`` fails in both libraries; the default 1.0 is what was used."""

    def snippet(lib):
        tokenizer = lib.GPT2Tokenizer.from_pretrained(causal_lm)
        model = lib.AutoModelForCausalLM.from_pretrained(causal_lm)
        tokenizer.pad_token_id = tokenizer.eos_token_id
        inputs = tokenizer(["Today is"], return_tensors="pt")

        # Example 1: Print the scores for each token generated with Greedy Search
        outputs = model.generate(**inputs, max_new_tokens=5, return_dict_in_generate=True, output_scores=True)
        transition_scores = model.compute_transition_scores(outputs.sequences, outputs.scores, normalize_logits=True)
        input_length = 1 if model.config.is_encoder_decoder else inputs.input_ids.shape[1]
        generated_tokens = outputs.sequences[:, input_length:]
        rows = [(int(tok), tokenizer.decode(tok), float(score), float(np.exp(score.numpy())))
                for tok, score in zip(generated_tokens[0], transition_scores[0])]

        # Example 2: Reconstruct the sequence scores from Beam Search
        outputs = model.generate(**inputs, max_new_tokens=5, num_beams=4, num_return_sequences=4,
                                 return_dict_in_generate=True, output_scores=True)
        transition_scores = model.compute_transition_scores(
            outputs.sequences, outputs.scores, outputs.beam_indices, normalize_logits=False
        )
        output_length = np.sum(transition_scores.numpy() < 0, axis=1)
        length_penalty = model.generation_config.length_penalty
        try:
            output_length ** length_penalty
            failure = None
        except TypeError as error:
            failure = type(error).__name__
        reconstructed_scores = transition_scores.sum(axis=1) / (output_length ** 1.0)
        return rows, failure, bool(np.allclose(outputs.sequences_scores, reconstructed_scores)), \
            outputs.sequences.tolist(), outputs.sequences_scores.tolist()

    got, expected = run_both(snippet)
    assert [row[:2] for row in got[0]] == [row[:2] for row in expected[0]]
    np.testing.assert_allclose([row[2:] for row in got[0]], [row[2:] for row in expected[0]], rtol=1e-5)
    assert got[1] == expected[1] == "TypeError"
    assert got[2] is expected[2] is True
    assert got[3] == expected[3]
    np.testing.assert_allclose(got[4], expected[4], rtol=1e-5)


def test_generation_strategies_v4_default_configuration_and_customization(causal_lm, t5, tmp_path):
    """generation_strategies.md (v4 page), Default text generation configuration and Customize text generation:
    ``model.generation_config`` as printed; overriding num_beams/do_sample/num_return_sequences in generate; Save a
    custom decoding strategy: several named configs in one folder (config_file_name positional)."""

    def snippet(lib):
        model = lib.AutoModelForCausalLM.from_pretrained(causal_lm)
        printed = repr(model.generation_config)
        tokenizer = lib.AutoTokenizer.from_pretrained(causal_lm)
        inputs = tokenizer("I look forward to", return_tensors="pt")
        lib.set_seed(0)
        several = model.generate(**inputs, num_beams=4, do_sample=True, num_return_sequences=2, max_new_tokens=8)
        t5_model = lib.AutoModelForSeq2SeqLM.from_pretrained(t5)
        t5_tokenizer = lib.AutoTokenizer.from_pretrained(t5)
        translation_generation_config = lib.GenerationConfig(
            num_beams=4, early_stopping=True, decoder_start_token_id=0, eos_token_id=t5_model.config.eos_token_id,
            pad_token=t5_model.config.pad_token_id,
        )
        folder = tmp_path / lib.__name__
        translation_generation_config.save_pretrained(folder, "translation_generation_config.json")
        generation_config = lib.GenerationConfig.from_pretrained(folder, "translation_generation_config.json")
        t5_inputs = t5_tokenizer("translate English to French: Configuration files are easy to use!", return_tensors="pt")
        outputs = t5_model.generate(**t5_inputs, generation_config=generation_config)
        return printed, several.tolist(), t5_tokenizer.batch_decode(outputs, skip_special_tokens=True)

    got, expected = run_both(snippet)
    assert got == expected and len(got[1]) == 2
