"""hugkit.logging (transformers.logging's switches over the "hugkit" logger) and the lazy top-level exports."""

from __future__ import annotations

import logging
import subprocess
import sys

import pytest

import hugkit


@pytest.fixture
def library_logging():
    """hugkit.logging, with the "hugkit" logger restored afterwards (other tests rely on propagation to caplog)."""
    from hugkit import logging as hk_logging

    yield hk_logging
    hk_logging._reset()
    hk_logging.enable_progress_bar()


def test_verbosity_round_trip(library_logging):
    assert hugkit.logging is library_logging
    assert library_logging.get_verbosity() == library_logging.WARNING
    for setter, level in (
        (library_logging.set_verbosity_error, logging.ERROR), (library_logging.set_verbosity_info, logging.INFO),
        (library_logging.set_verbosity_debug, logging.DEBUG), (library_logging.set_verbosity_warning, logging.WARNING),
    ):
        setter()
        assert library_logging.get_verbosity() == level
        assert logging.getLogger("hugkit.generation.loop").getEffectiveLevel() == level
    library_logging.set_verbosity("error")
    assert library_logging.get_verbosity() == logging.ERROR
    with pytest.raises(ValueError, match="one of debug, info"):
        library_logging.set_verbosity("loud")


def test_default_handler_writes_to_stderr_and_can_be_switched_off(library_logging, capsys):
    logger = library_logging.get_logger("hugkit.test")
    assert logger.name == "hugkit.test" and library_logging.get_logger().name == "hugkit"
    logger.warning("shown")
    library_logging.set_verbosity_error()
    logger.warning("hidden")
    library_logging.set_verbosity_warning()
    library_logging.disable_default_handler()
    logger.warning("no handler")
    library_logging.enable_default_handler()
    logger.warning("back")
    err = capsys.readouterr().err
    assert "[hugkit] shown" in err and "[hugkit] back" in err
    assert "hidden" not in err and "[hugkit] no handler" not in err


def test_propagation_and_extra_handlers(library_logging):
    records = []

    class Collect(logging.Handler):
        def emit(self, record):
            records.append(record.getMessage())

    handler = Collect()
    library_logging.add_handler(handler)
    library_logging.get_logger("hugkit.x").warning("one")
    library_logging.remove_handler(handler)
    library_logging.get_logger("hugkit.x").warning("two")
    assert records == ["one"]
    with pytest.raises(ValueError, match="not a handler"):
        library_logging.remove_handler(handler)
    assert logging.getLogger("hugkit").propagate is False  # transformers' default once configured
    library_logging.enable_propagation()
    assert logging.getLogger("hugkit").propagate is True


def test_progress_bar_switch(library_logging):
    assert library_logging.is_progress_bar_enabled()
    library_logging.disable_progress_bar()
    assert not library_logging.is_progress_bar_enabled()
    assert library_logging.tqdm(range(3)).disable
    library_logging.enable_progress_bar()
    assert library_logging.is_progress_bar_enabled()


def test_library_modules_do_not_configure_logging():
    """Importing and using hugkit leaves the "hugkit" logger to the application (no handler, propagating)."""
    code = (
        "import logging, hugkit; from hugkit.generation import GenerationConfig; GenerationConfig(max_new_tokens=2); "
        "hugkit.set_seed; hugkit.LogitsProcessor; log = logging.getLogger('hugkit'); "
        "print(len(log.handlers), log.propagate, 'torch' in __import__('sys').modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out[:2] == ["0", "True"]


def test_lazy_exports():
    code = (
        "import sys, hugkit; hugkit.logging.get_verbosity(); from hugkit import GenerationConfig, TextStreamer; "
        "print('torch' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "False"
    for name in ("set_seed", "LogitsProcessor", "LogitsProcessorList", "StoppingCriteria", "StoppingCriteriaList",
                 "AutoModelForSeq2SeqLM", "TextStreamer", "GenerationConfig", "GenerateEncoderDecoderOutput"):
        assert getattr(hugkit, name) is not None and name in dir(hugkit)
