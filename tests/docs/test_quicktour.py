"""transformers' "Quickstart" (quicktour.md) and "Logging" (main_classes/logging.md) pages, run as a user would with
``transformers`` replaced by ``hugkit``.

Hub ids become the tiny local checkpoints of ``conftest.py`` and ``"cuda"`` becomes ``"cpu"`` (the tests run on a
CPU-only machine); the text-generation pipeline samples by default, so those snippets are seeded with ``set_seed`` in
both libraries and give transformers' tokens.
"""

from __future__ import annotations

import ast
import logging
from pathlib import Path
from types import SimpleNamespace

import pytest

import hugkit
from tests.docs.snippets import device_map_auto, run_both

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


def test_base_classes(causal_lm):
    """quicktour.md, Base classes: the three base classes and the AutoClass API; from_pretrained with
    device_map="auto", tokenize, generate(max_length=30), batch_decode."""
    assert {hugkit.PretrainedConfig, hugkit.PreTrainedModel} and hugkit.AutoConfig

    def snippet(lib):
        model = lib.AutoModelForCausalLM.from_pretrained(causal_lm, **device_map_auto(lib))
        tokenizer = lib.AutoTokenizer.from_pretrained(causal_lm)
        model_inputs = tokenizer(["Hugging Face is a"], return_tensors="pt").to("cpu")
        generated_ids = model.generate(**model_inputs, max_length=30)
        config = lib.AutoConfig.from_pretrained(causal_lm)
        return (tokenizer.batch_decode(generated_ids)[0], generated_ids.shape, isinstance(model, lib.PreTrainedModel),
                config.vocab_size, config.num_attention_heads)

    got, expected = run_both(snippet)
    assert got == expected and got[1][1] == 30 and got[2] is True


def test_base_classes_tensorflow_tab_is_refused():
    """quicktour.md, Base classes (TensorFlow tab): hugkit runs PyTorch models; the TF class's import names the
    PyTorch one."""
    with pytest.raises(ImportError, match="hugkit has no TFAutoModelForCausalLM: .*use AutoModelForCausalLM"):
        from hugkit import TFAutoModelForCausalLM  # noqa: F401


def test_pipeline_api_text_generation(causal_lm):
    """quicktour.md, Pipeline API > text generation: pipeline("text-generation", model=..., device=...), prompted
    with max_length=50."""

    def snippet(lib):
        pipeline = lib.pipeline("text-generation", model=causal_lm, device="cpu")
        lib.set_seed(0)
        return pipeline("The secret to baking a good cake is ", max_length=50)

    got, expected = run_both(snippet)
    assert got == expected
    tokenizer = hugkit.AutoTokenizer.from_pretrained(causal_lm)
    assert len(tokenizer(got[0]["generated_text"])["input_ids"]) <= 50


def test_pipeline_api_image_segmentation_is_outside_hugkit():
    """quicktour.md, Pipeline API > image segmentation: vision models are outside hugkit; the task is refused with
    the tasks it runs."""
    with pytest.raises(KeyError, match="Unknown task 'image-segmentation'. Available tasks: .*text-generation"):
        hugkit.pipeline("image-segmentation", model="facebook/detr-resnet-50-panoptic", device="cpu")


def test_trainer_api(sst2_classifier):
    """quicktour.md, Trainer API: loading the model and tokenizer and tokenizing the data run as in transformers;
    training (Trainer, TrainingArguments, DataCollatorWithPadding) is outside hugkit, and each import says so."""

    def snippet(lib):
        model = lib.AutoModelForSequenceClassification.from_pretrained(sst2_classifier)
        tokenizer = lib.AutoTokenizer.from_pretrained(sst2_classifier)
        dataset = {"text": ["the rock is destined to be the 21st century's new conan", "a gorgeous, witty film"]}

        def tokenize_dataset(dataset):
            return tokenizer(dataset["text"])

        encoded = tokenize_dataset(dataset)
        return dict(encoded), type(model).__name__, model.config.num_labels

    got, expected = run_both(snippet)
    assert got == expected
    for name in ("Trainer", "TrainingArguments", "DataCollatorWithPadding"):
        with pytest.raises(ImportError, match=f"hugkit has no {name}: hugkit runs inference only"):
            exec(f"from hugkit import {name}")


@pytest.fixture
def library_logging():
    """hugkit's logging switches, put back as they were after each test."""
    yield hugkit.logging
    hugkit.logging._reset()
    hugkit.logging.enable_progress_bar()


def test_logging(library_logging, capsys):
    """main_classes/logging.md: set_verbosity_info() on the library, the same logger in your own script (through
    ``hugkit.utils.logging``, transformers' import path), the level constants, and get_verbosity()."""
    import hugkit

    hugkit.logging.set_verbosity_info()
    from hugkit.utils import logging as utils_logging

    assert utils_logging is hugkit.logging
    utils_logging.set_verbosity_info()
    logger = utils_logging.get_logger("hugkit")
    logger.info("INFO")
    logger.warning("WARN")
    assert capsys.readouterr().err == "[hugkit] INFO\n[hugkit] WARN\n"
    assert utils_logging.get_verbosity() == utils_logging.INFO == logging.INFO == 20
    levels = (utils_logging.CRITICAL, utils_logging.FATAL, utils_logging.ERROR, utils_logging.WARNING,
              utils_logging.WARN, utils_logging.INFO, utils_logging.DEBUG)
    assert levels == (50, 50, 40, 30, 30, 20, 10)
    utils_logging.set_verbosity_error()
    logger.warning("hidden")
    assert capsys.readouterr().err == ""


def test_disable_progress_bar_silences_every_bar(library_logging):
    """main_classes/logging.md: ``disable_progress_bar()`` / ``enable_progress_bar()`` switch every progress bar
    hugkit shows (they all come from ``hugkit.logging.tqdm``: the diffusion denoising bar, GPTQ calibration) and, as
    in transformers, huggingface_hub's download bars."""
    import huggingface_hub.utils

    from hugkit.diffusion.pipeline_utils import DiffusionPipeline

    def denoising_bar_disabled() -> bool:
        with DiffusionPipeline.progress_bar(SimpleNamespace(), total=3) as bar:
            return bar.disable

    library_logging.enable_progress_bar()
    assert not huggingface_hub.utils.are_progress_bars_disabled()
    library_logging.disable_progress_bar()
    assert not library_logging.is_progress_bar_enabled()
    assert denoising_bar_disabled() and library_logging.tqdm(range(3)).disable
    assert huggingface_hub.utils.are_progress_bars_disabled()
    library_logging.enable_progress_bar()
    assert not huggingface_hub.utils.are_progress_bars_disabled()
    # every other module makes its bars through hugkit.logging.tqdm
    package = Path(hugkit.__file__).parent
    direct = set()
    for path in package.rglob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module or ""] if isinstance(node, ast.ImportFrom) and node.level == 0 else []
            if any(name == "tqdm" or name.startswith("tqdm.") for name in names):
                direct.add(path.relative_to(package.parent).as_posix())
    # the ASR pipeline's bar is routed by its own work (it is outside this change)
    assert direct - {"hugkit/logging.py"} <= {"hugkit/pipelines/automatic_speech_recognition.py"}
