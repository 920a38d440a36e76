"""transformers' "Pipeline" tutorial (pipeline_tutorial.md), run as a user would with ``transformers`` replaced by
``hugkit``.

Hub ids become the tiny local checkpoints of ``conftest.py``; ``Accelerator().device`` (accelerate is not part of
hugkit) and ``device=0`` on this CPU-only machine become ``"cpu"``; the imdb dataset becomes an in-memory list of
dicts (no download); a snippet whose output is random (the text-generation pipeline samples by default) is seeded
with ``set_seed`` in both libraries, and gives transformers' tokens.
"""

from __future__ import annotations

import pytest
import torch

import hugkit
from tests.docs.snippets import device_map_auto, run_both
from tests.pipelines.seq2seq_checkpoints import ARTICLE

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")

REVIEWS = [
    {"text": "I loved this movie, the acting was wonderful and the story moving.", "label": -1},
    {"text": "A dull, overlong film. I walked out after an hour.", "label": -1},
    {"text": "Not bad at all " * 200, "label": -1},  # longer than the model takes: truncation="only_first"
    {"text": "The soundtrack alone is worth the ticket.", "label": -1},
]


def test_introduction_one_prompt_and_a_list(causal_lm):
    """pipeline_tutorial.md, introduction: a text-generation pipeline on one prompt, then on a list (with a
    device)."""

    def snippet(lib):
        pipeline = lib.pipeline(task="text-generation", model=causal_lm)
        lib.set_seed(0)
        one = pipeline("the secret to baking a really good cake is ")
        device = "cpu"  # Accelerator().device
        pipeline = lib.pipeline(task="text-generation", model=causal_lm, device=device)
        lib.set_seed(0)
        many = pipeline(["the secret to baking a really good cake is ", "a baguette is "])
        return one, many

    got, expected = run_both(snippet)
    assert got == expected
    one, many = got
    assert one[0]["generated_text"].startswith("the secret to baking a really good cake is ")
    assert [len(result) for result in many] == [1, 1]


def test_tasks_summarization(bart_summarizer):
    """pipeline_tutorial.md, Tasks > summarization. transformers 5 removed this pipeline (hugkit keeps v4's); the
    reference is transformers' generate on the same weights with the checkpoint's settings, input truncated to the
    model's 160 positions, as the v4 pipeline does."""
    import transformers

    text = (
        "Section was formerly set out as section 44 of this title. As originally enacted, this section contained two "
        "further provisions that 'nothing in this act shall be construed as in any wise affecting the grant of lands "
        "made to the State of California by virtue of the act entitled 'An act authorizing a grant to the State of "
        "California of the Yosemite Valley, and of the land' embracing the Mariposa Big-Tree Grove, approved June "
        "thirtieth, eighteen hundred and sixty-four; or as affecting any bona-fide entry of land made within the "
        "limits above described under any law of the United States prior to the approval of this act.' The first "
        "quoted provision was omitted from the Code because the land, granted to the state of California pursuant "
        "to the Act cite, was receded to the United States. Resolution June 11, 1906, No. 27, accepted the recession."
    )
    pipeline = hugkit.pipeline(task="summarization", model=bart_summarizer)
    got = pipeline(text)
    with pytest.raises(KeyError):
        transformers.pipeline(task="summarization", model=bart_summarizer)
    tokenizer = transformers.AutoTokenizer.from_pretrained(bart_summarizer)
    model = transformers.AutoModelForSeq2SeqLM.from_pretrained(bart_summarizer)
    inputs = tokenizer(text, truncation=True, max_length=160, return_tensors="pt")
    summary = model.generate(**inputs)
    assert got == [{"summary_text": tokenizer.decode(summary[0], skip_special_tokens=True,
                                                     clean_up_tokenization_spaces=False)}]
    assert hugkit.pipeline("summarization", model=bart_summarizer)(ARTICLE)[0]["summary_text"]


@pytest.mark.parametrize("task", ["image-classification", "visual-question-answering"])
def test_tasks_outside_hugkit(task):
    """pipeline_tutorial.md, Tasks > image classification, visual question answering: vision models are outside
    hugkit; the task is refused with the list of tasks it runs."""
    with pytest.raises(KeyError, match=f"Unknown task '{task}'. Available tasks: .*text-generation"):
        hugkit.pipeline(task=task, model="google/vit-base-patch16-224")


def test_parameters_device(causal_lm):
    """pipeline_tutorial.md, Parameters > Device: ``device=0`` (the first GPU; on a machine without one, transformers
    and hugkit both run on the CPU), ``device_map="auto"`` (no accelerate needed in hugkit), ``device="mps"``
    (refused as in transformers where there is no MPS; used where there is)."""
    import transformers

    def snippet(lib):
        pipeline = lib.pipeline(task="text-generation", model=causal_lm, device=0)
        lib.set_seed(0)
        first_gpu = pipeline.device.type, pipeline("the secret to baking a really good cake is ", max_new_tokens=12)
        pipeline = lib.pipeline(task="text-generation", model=causal_lm, **device_map_auto(lib))
        lib.set_seed(0)
        return first_gpu, pipeline("the secret to baking a really good cake is ", max_new_tokens=12)

    got, expected = run_both(snippet)
    assert got == expected
    assert got[0][0] == ("cuda" if torch.cuda.is_available() else "mps" if torch.backends.mps.is_available() else "cpu")
    if torch.backends.mps.is_available():
        assert hugkit.pipeline(task="text-generation", model=causal_lm, device="mps").device.type == "mps"
    else:
        with pytest.raises(RuntimeError) as theirs:
            transformers.pipeline(task="text-generation", model=causal_lm, device="mps")
        with pytest.raises(RuntimeError, match=str(theirs.value)[:30]):
            hugkit.pipeline(task="text-generation", model=causal_lm, device="mps")


def test_parameters_batch_inference(causal_lm):
    """pipeline_tutorial.md, Parameters > Batch inference: 4 prompts, batch_size=2 (batches padded on the left;
    sampled, seeded: the same tokens as transformers)."""

    def snippet(lib):
        device = "cpu"  # Accelerator().device
        pipeline = lib.pipeline(task="text-generation", model=causal_lm, device=device, batch_size=2)
        lib.set_seed(0)
        return pipeline(["the secret to baking a really good cake is", "a baguette is", "paris is the", "hotdogs are"])

    got, expected = run_both(snippet)
    assert got == expected and len(got) == 4


def test_key_dataset_with_text_classification(sst2_classifier):
    """pipeline_tutorial.md, Parameters > Batch inference and Large datasets: ``KeyDataset(dataset, "text")`` fed
    to a text-classification pipeline with batch_size=8 and truncation="only_first"; results come lazily."""
    import transformers.pipelines.pt_utils

    import hugkit.pipelines.pt_utils

    def snippet(lib):
        KeyDataset = (hugkit.pipelines.pt_utils if lib is hugkit else transformers.pipelines.pt_utils).KeyDataset
        device = "cpu"  # Accelerator().device
        dataset = REVIEWS  # datasets.load_dataset("imdb", name="plain_text", split="unsupervised")
        pipeline = lib.pipeline(task="text-classification", model=sst2_classifier, device=device)
        outs = []
        for out in pipeline(KeyDataset(dataset, "text"), batch_size=8, truncation="only_first"):
            outs.append(out)
        return outs

    got, expected = run_both(snippet)
    assert [o["label"] for o in got] == [o["label"] for o in expected]
    assert [o["score"] for o in got] == pytest.approx([o["score"] for o in expected], abs=1e-5)
    assert len(got) == len(REVIEWS)
    with pytest.raises(KeyError, match="no 'review' field"):
        list(hugkit.pipeline("text-classification", model=sst2_classifier)(
            hugkit.pipelines.pt_utils.KeyDataset(REVIEWS, "review")))

    pairs = [{"premise": r["text"], "hypothesis": "It is a movie review."} for r in REVIEWS[:2]]

    def pair_snippet(lib):  # KeyPairDataset, its sibling for text pairs
        KeyPairDataset = (hugkit.pipelines.pt_utils if lib is hugkit else transformers.pipelines.pt_utils).KeyPairDataset
        pipeline = lib.pipeline(task="text-classification", model=sst2_classifier)
        return list(pipeline(KeyPairDataset(pairs, "premise", "hypothesis")))

    got, expected = run_both(pair_snippet)
    assert [o["label"] for o in got] == [o["label"] for o in expected]
    assert [o["score"] for o in got] == pytest.approx([o["score"] for o in expected], abs=1e-5)


def test_task_specific_parameters_text_generation(causal_lm):
    """pipeline_tutorial.md, Task-specific parameters > text generation: return_full_text=False and
    num_return_sequences=4 (the pipeline samples by default; seeded)."""

    def snippet(lib):
        pipeline = lib.pipeline(task="text-generation", model=causal_lm)
        lib.set_seed(0)
        return pipeline("the secret to baking a good cake is", num_return_sequences=4, return_full_text=False)

    got, expected = run_both(snippet)
    assert got == expected
    assert len(got) == 4 and not any(r["generated_text"].startswith("the secret") for r in got)


def test_large_datasets_generator(causal_lm):
    """pipeline_tutorial.md, Large datasets: a generator of prompts through ``pipeline(model=...)`` without a task
    (hugkit reads it from the checkpoint's architectures; transformers asks the Hub, which a local folder cannot
    answer, so its reference names the task). 3 examples instead of 1000."""
    import transformers

    def data():
        for i in range(3):
            yield f"My example {i}"

    def snippet(lib):
        if lib is hugkit:
            pipeline = lib.pipeline(model=causal_lm, device="cpu")  # device=0 on a GPU machine
        else:
            pipeline = lib.pipeline("text-generation", model=causal_lm, device="cpu")
        lib.set_seed(0)
        generated_characters = 0
        texts = []
        for out in pipeline(data()):
            generated_characters += len(out[0]["generated_text"])
            texts.append(out[0]["generated_text"])
        return generated_characters, texts

    got, expected = run_both(snippet)
    assert got == expected and [t[:12] for t in got[1]] == ["My example 0", "My example 1", "My example 2"]


def test_large_models_half_precision(causal_lm):
    """pipeline_tutorial.md, Large models: bfloat16 weights with device_map="auto" (seeded, the same tokens as
    transformers); the bitsandbytes quantization_config is a backend hugkit does not use, and its import says what
    to use instead."""
    with pytest.raises(ImportError, match="hugkit has no BitsAndBytesConfig.*quantize_"):
        from hugkit import BitsAndBytesConfig  # noqa: F401

    def snippet(lib):
        pipeline = lib.pipeline(model=causal_lm, dtype=torch.bfloat16, **device_map_auto(lib)) if lib is hugkit \
            else lib.pipeline("text-generation", model=causal_lm, dtype=torch.bfloat16)
        lib.set_seed(0)
        return pipeline.model.dtype, pipeline("the secret to baking a good cake is ", max_new_tokens=40)

    got, expected = run_both(snippet)
    assert got == expected and got[0] == torch.bfloat16
