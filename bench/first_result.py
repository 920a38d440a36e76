"""Fresh process to first sentiment result: hugkit vs transformers on the same checkpoint (medians of interleaved runs).

    python bench/first_result.py [--runs 5] [--model FOLDER] [--quick] [--json]

The checkpoint is hugkit's built-in sentiment model (hugkit/builtin/sentiment-minilm); transformers loads the
same folder with `pipeline("sentiment-analysis", model=folder)`. Each run is a new `python -c` process; the
parent times from spawn to the child's first stdout line (the result, printed and flushed) and to its exit.
Rows:
  hugkit pipeline()            `pipeline("sentiment-analysis")` (the built-in default, no model argument)
  hugkit pipeline(model=...)   same folder passed explicitly (the like-for-like row)
  transformers pipeline(...)   `pipeline("sentiment-analysis", model=folder)`, its defaults (dtype "auto")
  hugkit CLI                   `python -m hugkit sentiment-analysis "text"`, end to end
Each library uses its own default dtype (a user's first call); the dtype it ended up with is printed.
The stderr column counts lines a library printed (warnings, progress bars): hugkit should print none.
Target: hugkit's time to first result at most 1/2.5 of transformers' (ratio transformers/hugkit >= 2.5).
"""

from __future__ import annotations

import argparse
import json
import sys

import common

TEXT = "I love this movie, it was wonderful!"
TARGET_RATIO = 2.5

CHILD = """
import json
from {library} import pipeline
pipe = pipeline("sentiment-analysis"{model_arg})
result = pipe({text!r})
print("RESULT " + json.dumps(result), flush=True)
print("DTYPE " + str(getattr(pipe.model, "dtype", "?")).replace("torch.", ""), flush=True)
"""


def cases(folder: str, builtin: bool) -> dict[str, list[str]]:
    model_arg = f", model={folder!r}"
    python = [sys.executable]
    rows = {}
    if builtin:
        rows["hugkit pipeline()"] = python + ["-c", CHILD.format(library="hugkit", model_arg="", text=TEXT)]
    rows["hugkit pipeline(model=folder)"] = python + ["-c", CHILD.format(library="hugkit", model_arg=model_arg, text=TEXT)]
    rows["transformers pipeline(model=folder)"] = python + ["-c", CHILD.format(library="transformers", model_arg=model_arg, text=TEXT)]
    cli = python + ["-m", "hugkit", "sentiment-analysis", TEXT]
    rows["hugkit CLI (python -m hugkit)"] = cli if builtin else cli[:3] + ["--model", folder] + cli[3:]
    return rows


REFERENCE = "transformers pipeline(model=folder)"


def parse_result(name: str, child: common.ChildResult) -> tuple[object, str]:
    if name.startswith("hugkit CLI"):
        first = child.stdout.splitlines()[0] if child.stdout.strip() else "null"
        return json.loads(first), "-"
    dtype = next((line.split(" ", 1)[1] for line in child.stdout.splitlines() if line.startswith("DTYPE ")), "?")
    return child.json_line(), dtype


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=5, help="timed runs per row (after one warm-up run)")
    parser.add_argument("--model", default=None, help="checkpoint folder (default: hugkit's built-in sentiment model)")
    parser.add_argument("--quick", action="store_true", help="smoke test: 2 runs")
    parser.add_argument("--json", nargs="?", const="", default=None, help="write JSON (default bench/results/first_result.json)")
    args = parser.parse_args(argv)
    runs = 2 if args.quick else max(args.runs, 1)
    common.print_header("first_result", f"runs={runs}")
    folder, builtin = common.sentiment_checkpoint(args.model)
    print(f"# checkpoint: {folder}", flush=True)

    commands = cases(str(folder), builtin)
    samples: dict[str, list[dict]] = {name: [] for name in commands}
    # Round 0 is an untimed warm-up (page cache, .pyc files, any one-time tokenizer cache); then interleaved rounds.
    for round_index in range(runs + 1):
        for name, argv_child in commands.items():
            child = common.run_child(argv_child, timeout=600)
            if not child.ok:
                print(child.failure(name), file=sys.stderr)
                samples[name].append({"error": child.stderr.strip().splitlines()[-1:] or ["?"]})
                continue
            if round_index == 0:
                continue
            result, dtype = parse_result(name, child)
            samples[name].append({"first_result_s": child.first_line_s, "exit_s": child.total_s, "result": result,
                                  "dtype": dtype, "stderr_lines": child.stderr_lines()})

    def good(name: str) -> list[dict]:
        return [s for s in samples[name] if "error" not in s]

    reference = common.median(s["first_result_s"] for s in good(REFERENCE))
    rows, summary = [], {}
    for name in commands:
        runs_ok = good(name)
        if not runs_ok:
            rows.append([name, "FAILED"] + [""] * 7)
            summary[name] = {"error": samples[name][-1]["error"]}
            continue
        first = common.median(s["first_result_s"] for s in runs_ok)
        exit_s = common.median(s["exit_s"] for s in runs_ok)
        speedup = None if name == REFERENCE else common.ratio(reference, first)
        result = runs_ok[-1]["result"]
        label = result[0]["label"] if isinstance(result, list) and result else (result or {}).get("label", "?")
        rows.append([
            name, f"{first:.2f}", common.spread([s["first_result_s"] for s in runs_ok], ".2f"), f"{exit_s:.2f}",
            runs_ok[-1]["dtype"], str(max(s["stderr_lines"] for s in runs_ok)), label,
            common.fmt_ratio(speedup), common.target_check(speedup, TARGET_RATIO) if speedup is not None else "",
        ])
        summary[name] = {"first_result_s": first, "exit_s": exit_s, "transformers_over_this": speedup, "runs": runs_ok}

    common.print_table(
        f"Fresh process to first sentiment result (medians of {runs})",
        ["command", "first result s", "range s", "exit s", "dtype", "stderr", "label", "transformers/this", "target >=2.5x"],
        rows,
        notes=[f"checkpoint: {folder}" + ("" if builtin else " (NOT the built-in model)"), f"text: {TEXT!r}"],
    )
    payload = {"runs": runs, "model": str(folder), "builtin": builtin, "results": summary, "versions": common.library_versions()}
    if args.json is not None:
        common.save_json("first_result", payload, args.json or None)
    return payload


if __name__ == "__main__":
    main()
