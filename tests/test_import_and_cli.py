"""`import hugkit` stays light, and the command line prints one JSON line per input."""

import json
import subprocess
import sys

import pytest

from tests.assets import BUILTIN_SENTIMENT


def run(args, stdin=None):
    return subprocess.run([sys.executable, *args], input=stdin, capture_output=True, text=True, timeout=300)


def test_import_does_not_load_torch():
    code = "import sys, hugkit; from hugkit import pipeline, AutoTokenizer, AutoModel; print('torch' in sys.modules)"
    result = run(["-c", code])
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "False"


def test_cli_arguments_and_stdin(tmp_path):
    from tests.pipelines.conftest import _bert_like

    folder = _bert_like("bert", tmp_path / "tiny", "BertForSequenceClassification")
    from hugkit import pipeline

    expected = pipeline("text-classification", model=str(folder))(["good", "bad"])
    result = run(["-m", "hugkit", "text-classification", "--model", str(folder), "good", "bad"])
    assert result.returncode == 0, result.stderr
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert [r["label"] for r in lines] == [r["label"] for r in expected]
    assert [r["score"] for r in lines] == pytest.approx([r["score"] for r in expected], abs=1e-5)
    piped = run(["-m", "hugkit", "text-classification", "-m", str(folder), "--kwargs", '{"top_k": 2}'], stdin="good\n\nbad\n")
    assert piped.returncode == 0, piped.stderr
    rows = [json.loads(line) for line in piped.stdout.splitlines()]
    assert len(rows) == 2 and all(len(row) == 2 for row in rows)
    assert piped.stderr == ""


def test_cli_errors_are_one_line():
    result = run(["-m", "hugkit", "sentiment", "text"])
    assert result.returncode == 1
    assert result.stderr.startswith("hugkit: error: Unknown task 'sentiment'") and "Traceback" not in result.stderr
    bad_kwargs = run(["-m", "hugkit", "sentiment-analysis", "--kwargs", "[1]", "x"])
    assert bad_kwargs.returncode == 2 and "JSON object" in bad_kwargs.stderr


def test_cli_builtin_sentiment():
    assert (BUILTIN_SENTIMENT / "model.safetensors").is_file(), "the built-in model is missing: rebuild it with recipes/train_sentiment.py"
    result = run(["-m", "hugkit", "sentiment-analysis", "I love using Hugging Face!"])
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["label"] == "POSITIVE"
    assert result.stderr == "", "the library must be quiet in normal use"
