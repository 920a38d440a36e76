"""Command line: ``hugkit <task> [--model X] "text" ...`` or lines on stdin -> one JSON line per input.

Examples::

    hugkit sentiment-analysis "I love this!"
    cat reviews.txt | hugkit text-classification --model ./my-model --batch-size 32
    hugkit feature-extraction --model ./minilm --kwargs '{"return_tensors": false}' "hello"
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from typing import Any, Iterator


def _parser() -> argparse.ArgumentParser:
    from .pipelines import SUPPORTED_TASKS

    parser = argparse.ArgumentParser(
        prog="hugkit",
        description="Run a hugkit pipeline. Inputs come from the arguments, or one per line on stdin; "
        "each result is printed as one JSON line.",
    )
    parser.add_argument("task", help=f"one of: {', '.join(SUPPORTED_TASKS)}")
    parser.add_argument("inputs", nargs="*", help="texts to process (default: read lines from stdin)")
    parser.add_argument("--model", "-m", default=None, help="checkpoint folder or hub id (default: the task's default)")
    parser.add_argument("--tokenizer", default=None, help="tokenizer folder or id (default: the model's)")
    parser.add_argument("--device", default=None, help="cpu, cuda, cuda:1, mps ... (default: cpu)")
    parser.add_argument("--dtype", default=None, help="float32 (default), float16, bfloat16 or auto")
    parser.add_argument("--batch-size", type=int, default=None, help="inputs per forward pass")
    parser.add_argument("--kwargs", default="{}", help='task options as a JSON object, e.g. \'{"top_k": 2}\'')
    parser.add_argument("--verbose", "-v", action="store_true", help="log what hugkit does to stderr")
    return parser


def _stdin_lines() -> Iterator[str]:
    for line in sys.stdin:
        line = line.rstrip("\n")
        if line.strip():  # blank lines carry nothing to process
            yield line


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_intermixed_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        options: dict[str, Any] = json.loads(args.kwargs)
        if not isinstance(options, dict):
            raise ValueError
    except ValueError:
        print(f"hugkit: --kwargs must be a JSON object, got {args.kwargs!r}", file=sys.stderr)
        return 2
    from .pipelines import pipeline

    try:
        pipe = pipeline(
            args.task, model=args.model, tokenizer=args.tokenizer, device=args.device, dtype=args.dtype,
            batch_size=args.batch_size,
        )
        inputs = args.inputs if args.inputs else _stdin_lines()
        results = pipe(list(inputs) if args.inputs else inputs, **options)
        for result in results:
            sys.stdout.write(json.dumps(result, ensure_ascii=False) + "\n")
            sys.stdout.flush()
    except (KeyError, ValueError, TypeError, OSError) as exc:
        message = exc.args[0] if isinstance(exc, KeyError) and exc.args else exc
        print(f"hugkit: error: {message}", file=sys.stderr)
        return 1
    except BrokenPipeError:  # e.g. piped into `head`
        return 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
