"""Run every benchmark in sequence (each in its own process, so none inherits another's imports) and print all tables.

    python bench/run_all.py            # full measurement (~30 min on 2 quiet CPUs; mostly throughput.py)
    python bench/run_all.py --quick    # smoke test of every script (a few minutes)
    python bench/run_all.py --only import_time,first_result

JSON for each benchmark is written to bench/results/<name>.json (not with --quick: its numbers mean nothing and
would overwrite a full run's). Exit status is 1 if any benchmark failed.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time

import common

BENCHMARKS = ("import_time", "first_result", "load_memory", "throughput", "generation", "quantization", "zero_shot",
              "diffusion", "audio_features", "speech")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="pass --quick to every benchmark")
    parser.add_argument("--only", default=",".join(BENCHMARKS), help=f"comma-separated subset of {','.join(BENCHMARKS)}")
    parser.add_argument("--no-json", action="store_true", help="do not write bench/results/*.json")
    args = parser.parse_args()
    chosen = [name for name in args.only.split(",") if name]
    unknown = set(chosen) - set(BENCHMARKS)
    if unknown:
        parser.error(f"unknown benchmark(s) {sorted(unknown)}")

    common.print_header("run_all", "(quick)" if args.quick else "")
    print(f"# versions: {common.library_versions()}")
    failed = []
    for name in chosen:
        argv = [sys.executable, str(common.BENCH_DIR / f"{name}.py")]
        argv += ["--quick"] if args.quick else []
        argv += [] if args.no_json or args.quick else ["--json"]
        print(f"\n{'#' * 100}\n# {name}: {' '.join(argv[1:])}\n{'#' * 100}", flush=True)
        start = time.perf_counter()
        code = subprocess.call(argv, cwd=common.REPO, env=common.CHILD_ENV)
        print(f"# {name} finished in {time.perf_counter() - start:.0f} s (exit {code})", flush=True)
        if code:
            failed.append(name)
    if failed:
        print(f"\nFAILED: {', '.join(failed)}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
