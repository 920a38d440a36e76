"""Import time, hugkit vs transformers, in fresh processes (medians of interleaved runs).

    python bench/import_time.py [--runs 7] [--quick] [--json]

For each statement, a fresh `python -c` times the import with perf_counter inside the child ("import s"), and the
parent times the whole process from spawn to exit ("process s", which adds interpreter start-up and teardown).
The child also reports whether torch ended up in sys.modules: `import hugkit` must not import torch.
Target: hugkit's import at most 1/20 of `from transformers import pipeline` (ratio transformers/hugkit >= 20).
"""

from __future__ import annotations

import argparse
import sys

import common

CHILD = """
import sys, time, json
t0 = time.perf_counter()
{statement}
elapsed = time.perf_counter() - t0
print("RESULT " + json.dumps({{"import_s": elapsed, "torch": "torch" in sys.modules,
                               "transformers": "transformers" in sys.modules, "modules": len(sys.modules)}}))
"""

STATEMENTS = {
    "python (nothing)": "pass",
    "import hugkit": "import hugkit",
    "from hugkit import pipeline": "from hugkit import pipeline",
    "import torch": "import torch",
    "from transformers import pipeline": "from transformers import pipeline",
}
REFERENCE = "from transformers import pipeline"
HUGKIT_ROWS = ("import hugkit", "from hugkit import pipeline")
TARGET_RATIO = 20.0


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=7, help="timed runs per statement (after one warm-up run)")
    parser.add_argument("--quick", action="store_true", help="smoke test: 2 runs")
    parser.add_argument("--json", nargs="?", const="", default=None, help="write JSON (default bench/results/import_time.json)")
    args = parser.parse_args(argv)
    runs = 2 if args.quick else max(args.runs, 1)
    common.print_header("import_time", f"runs={runs}")

    samples: dict[str, list[dict]] = {name: [] for name in STATEMENTS}
    # One untimed warm-up of each (page cache, .pyc files), then interleaved rounds so load drifts hit all alike.
    for round_index in range(runs + 1):
        for name, statement in STATEMENTS.items():
            child = common.run_python(CHILD.format(statement=statement), timeout=300)
            if not child.ok:
                raise SystemExit(child.failure(name))
            if round_index == 0:
                continue
            result = child.json_line()
            result["process_s"] = child.total_s
            samples[name].append(result)

    reference = common.median(r["import_s"] for r in samples[REFERENCE])
    rows, summary = [], {}
    for name, results in samples.items():
        import_s = common.median(r["import_s"] for r in results)
        process_s = common.median(r["process_s"] for r in results)
        torch_loaded = any(r["torch"] for r in results)
        speedup = common.ratio(reference, import_s) if name in HUGKIT_ROWS else None
        rows.append([
            name, f"{import_s * 1000:,.1f}", common.spread([r["import_s"] * 1000 for r in results], ",.1f"),
            f"{process_s * 1000:,.0f}", "yes" if torch_loaded else "no", common.fmt_ratio(speedup),
            common.target_check(speedup, TARGET_RATIO) if speedup is not None else "",
        ])
        summary[name] = {"import_s": import_s, "process_s": process_s, "torch_imported": torch_loaded,
                         "transformers_over_this": speedup, "runs": results}

    common.print_table(
        "Import time (fresh process, medians)",
        ["statement", "import ms", "range ms", "process ms", "torch?", "transformers/this", "target >=20x"],
        rows,
        notes=[f"{runs} interleaved runs per row after one warm-up; 'process ms' includes interpreter start and exit."],
    )
    ok = not samples["import hugkit"] or not any(r["torch"] for r in samples["import hugkit"])
    print(f"\n`import hugkit` imported torch: {'NO (good)' if ok else 'YES (bug: hugkit/__init__ must stay lazy)'}")
    payload = {"runs": runs, "results": summary, "import_hugkit_imports_torch": not ok, "versions": common.library_versions()}
    if args.json is not None:
        common.save_json("import_time", payload, args.json or None)
    return payload


if __name__ == "__main__":
    main()
    sys.exit(0)
