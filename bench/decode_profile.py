"""Where the time of one decode step goes (issue 13): hugkit's Python decode step vs its native step, per token.

    python bench/decode_profile.py [--quick] [--model smollm2-gguf|llama-135m] [--activations float int8]
                                   [--steps 64] [--prompt-tokens 11] [--threads 2]

For each path (``python``: runners.DecoderOnlyRunner, the model's own modules; ``native``: native_runner's compiled
step in its default exact mode, when it builds here; ``native-fast``: the same step with its own norm/attention
loops, ``exact=False``) and each activations setting of a quantized model:

- per-token step time (median over ``--steps`` decode steps after an ``--prompt-tokens`` prefill), uninstrumented;
- an instrumented run that splits the step: quantized-matmul kernel calls (kernel.py's group_mm / group_mm_q8),
  float ``F.linear``, attention (``F.scaled_dot_product_attention``), and everything else (norms, rotary, cache
  writes, masks, Python). Timers wrap each call (~0.3 us each); their own cost lands in "everything else". The
  native step reports the same split from timers inside the C++ step (``profile=True``);
- dispatches per token: aten ops (counted by a TorchDispatchMode) plus compiled-kernel calls, for the Python path;
  for the native step: the Python-level calls per token (one) and the parallel regions it opens;
- 1 vs 2 threads for each distinct matmul of the model at batch 1 (medians of repeated calls): the Python module
  (kernel.py splits a call over threads only from 1M weights per task) and the native step's split (one parallel
  region, each thread a share of the output rows); for the whole step; and, at 2 threads, the native step's
  ``parallel_weights`` threshold (matmul groups smaller than this stay on one thread).

``--torch-compile`` also measures issue 13's option (b): ``torch.compile`` of the Python step (runners'
``compile=True``) with kernel.py's matmuls registered as ``torch.library`` custom ops for this process (so the graph
does not break at every matmul): compile time of the first step, then per-token step time beside the Python and
native steps, and whether its greedy tokens match.

The model: the built-in SmolLM2-135M Q4_1 GGUF (default), or the seeded random fp32 Llama of SmolLM2's shape from
bench/generation.py (``llama-135m``).
"""

from __future__ import annotations

import argparse
import functools
import time
from collections import Counter, defaultdict

import common


def load_model(name: str, activations: str):
    import hugkit

    if name == "smollm2-gguf":
        import generation

        model = hugkit.AutoModelForCausalLM.from_pretrained(common._require(generation.SMOLLM2_GGUF))
        if activations != "float":
            from hugkit.quantization.base import set_activations_

            set_activations_(model, activations)
        return model
    import generation

    return hugkit.AutoModelForCausalLM.from_pretrained(generation.llama_135m_checkpoint())


def make_runner(model, path: str, prompt, steps: int, parallel_weights: int | None = None):
    import torch

    mask = torch.ones_like(prompt)
    if path == "python":
        from hugkit.generation.runners import DecoderOnlyRunner

        return DecoderOnlyRunner(model, prompt, mask, steps)
    from hugkit.generation.native_runner import NativeDecoderRunner

    runner = NativeDecoderRunner(model, prompt, mask, steps, exact=path == "native")
    if not runner.native:
        raise RuntimeError("the native step does not take this model here")
    if parallel_weights is not None:
        runner._step.parallel_weights = parallel_weights
    return runner


def step_times(model, path: str, prompt, steps: int, profile: bool = False, parallel_weights: int | None = None):
    """Per-step seconds of ``steps`` greedy decode steps after the prefill; the runner is returned too."""
    import torch

    runner = make_runner(model, path, prompt, steps, parallel_weights)
    if profile:
        runner.profile = True
    times = []
    with torch.inference_mode():
        token = runner.first_logits().argmax(-1)
        for _ in range(steps):
            start = time.perf_counter()
            token = runner.step(token).argmax(-1)
            times.append(time.perf_counter() - start)
    return times, runner


class Timers:
    """Wrap the matmul / attention entry points with timers; ``split`` gives seconds per category."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = defaultdict(float)
        self.calls: Counter = Counter()
        self._undo: list = []

    def wrap(self, owner, attribute: str, category: str) -> None:
        original = getattr(owner, attribute)

        @functools.wraps(original)
        def timed(*args, **kwargs):
            start = time.perf_counter()
            try:
                return original(*args, **kwargs)
            finally:
                self.seconds[category] += time.perf_counter() - start
                self.calls[category] += 1

        setattr(owner, attribute, timed)
        self._undo.append((owner, attribute, original))

    def __enter__(self) -> "Timers":
        import torch.nn.functional as F

        from hugkit.gguf.kernel import block_mm_kernel

        kernel = block_mm_kernel()
        if kernel is not None:
            self.wrap(kernel, "group_mm", "quantized matmul")
            self.wrap(kernel, "group_mm_q8", "quantized matmul")
        self.wrap(F, "linear", "float matmul")
        self.wrap(F, "scaled_dot_product_attention", "attention")
        return self

    def __exit__(self, *exc) -> None:
        for owner, attribute, original in reversed(self._undo):
            setattr(owner, attribute, original)


def count_dispatches(model, prompt, steps: int) -> tuple[float, float]:
    """(aten ops per step, compiled-kernel calls per step) of the Python path."""
    import torch
    from torch.utils._python_dispatch import TorchDispatchMode

    class Count(TorchDispatchMode):
        ops = 0

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            Count.ops += 1
            return func(*args, **(kwargs or {}))

    from hugkit.generation.runners import DecoderOnlyRunner

    runner = DecoderOnlyRunner(model, prompt, torch.ones_like(prompt), steps)
    with torch.inference_mode():
        token = runner.first_logits().argmax(-1)
        with Timers() as timers, Count():
            for _ in range(steps):
                token = runner.step(token).argmax(-1)
    return Count.ops / steps, timers.calls["quantized matmul"] / steps


def distinct_matmuls(model) -> dict[str, object]:
    """One module per distinct (type, kind, out, in) linear layer of the model, lm_head included."""
    from torch import nn

    from hugkit.quantization.base import QuantizedLinear

    found = {}
    for name, module in model.named_modules():
        if isinstance(module, (nn.Linear, QuantizedLinear)):
            kind = getattr(module, "kind", None) or type(module).__name__
            key = f"{kind} ({module.out_features}, {module.in_features})"
            found.setdefault(key + (" head" if name.endswith("lm_head") else ""), module)
    return found


def _median_us(call, repeats: int) -> float:
    for _ in range(3):
        call()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    return common.median(times) * 1e6


def kernel_threads(model, repeats: int, native: bool) -> list[list]:
    """Microseconds per batch-1 call of each distinct matmul: the Python module at 1 and 2 threads, and (native) the
    step's matmul in the calling thread vs split over 2 tasks."""
    import torch

    rows = []
    for key, module in distinct_matmuls(model).items():
        x = torch.randn(1, module.in_features)
        with torch.inference_mode():
            per = {}
            for threads in (1, 2):
                torch.set_num_threads(threads)
                per[threads] = _median_us(lambda: module(x[None]), repeats)
            row = [key, per[1], per[2], common.fmt_ratio(per[1] / per[2])]
            if native:
                from hugkit import native as native_package
                from hugkit.generation.native_runner import _linear_spec

                matmul = native_package.load().Matmul(_linear_spec(module, key))
                torch.set_num_threads(2)
                one, two = (_median_us(lambda: matmul.run(x, tasks), repeats) for tasks in (1, 2))
                row += [one, two, common.fmt_ratio(one / two)]
        rows.append(row)
    return rows


PARALLEL_SWEEP = (1 << 40, 1 << 19, 1 << 17, 1 << 15)  # 1 << 40: never split


_KERNEL_OPS = {}


def kernel_ops():
    """kernel.py's group_mm / group_mm_q8 as torch.library custom ops (defined once per process), in an object
    shaped like kernel.py's module: what option (b) needs so dynamo traces the whole step as one graph."""
    import torch

    from hugkit.gguf.kernel import block_mm_kernel

    if _KERNEL_OPS:
        return _KERNEL_OPS["ops"]
    kernel = block_mm_kernel()
    schema = "(Tensor x, Tensor q, Tensor scales, Tensor zeros, int group_size, bool nibbles, Tensor bias) -> Tensor"

    def define(name, function):
        @torch.library.custom_op(f"hugkit_bench::{name}", mutates_args=(), schema=schema)
        def op(x, q, scales, zeros, group_size, nibbles, bias):
            return function(x.contiguous(), q, scales, zeros, group_size, nibbles, bias)

        @op.register_fake
        def _(x, q, scales, zeros, group_size, nibbles, bias):
            return x.new_empty(*x.shape[:-1], scales.shape[0])

        return op

    class Ops:
        group_mm = staticmethod(define("group_mm", kernel.group_mm))
        group_mm_q8 = staticmethod(define("group_mm_q8", kernel.group_mm_q8))
        group_dequant = staticmethod(kernel.group_dequant)

    _KERNEL_OPS["ops"] = Ops
    return Ops


def torch_compile_rows(model, setting: str, prompt, steps: int) -> list[list]:
    """[setting, path, first step s, ms per token, tokens equal to the Python path] for compiled / python / native."""
    import torch

    from hugkit.generation.runners import DecoderOnlyRunner

    def run(make):
        runner = make()
        with torch.inference_mode():
            token = runner.first_logits().argmax(-1)
            out, times = [token], []
            for _ in range(steps):
                start = time.perf_counter()
                token = runner.step(token).argmax(-1)
                times.append(time.perf_counter() - start)
                out.append(token)
        return times[0], common.median(times[1:]) * 1e3, torch.cat(out).tolist()

    import hugkit.generation.runners as runners
    import hugkit.quantization.base as quantized_base

    mask = torch.ones_like(prompt)
    compiled = lambda: DecoderOnlyRunner(model, prompt, mask, steps, compile=True)  # noqa: E731
    _, python_ms, python_tokens = run(lambda: DecoderOnlyRunner(model, prompt, mask, steps))
    ops, original = kernel_ops(), quantized_base.block_mm_kernel
    quantized_base.block_mm_kernel = lambda: ops  # QuantizedLinear calls the custom ops (this process, for now)
    getattr(runners, "_compiled", {}).clear()  # a fresh compile for this model (runners caches one step)
    try:
        first, _, _ = run(compiled)  # compiles
        _, compiled_ms, compiled_tokens = run(compiled)
    finally:
        quantized_base.block_mm_kernel = original
        getattr(runners, "_compiled", {}).clear()
    rows = [[setting, "torch.compile", first, compiled_ms, compiled_tokens == python_tokens],
            [setting, "python", "-", python_ms, True]]
    try:
        _, native_ms, native_tokens = run(lambda: make_runner(model, "native", prompt, steps))
        rows.append([setting, "native", "-", native_ms, native_tokens == python_tokens])
    except (ImportError, RuntimeError):
        pass
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="smollm2-gguf", choices=("smollm2-gguf", "llama-135m"))
    parser.add_argument("--activations", nargs="+", default=["float", "int8"], choices=("float", "int8"))
    parser.add_argument("--paths", nargs="+", default=["python", "native", "native-fast"],
                        choices=("python", "native", "native-fast"))
    parser.add_argument("--steps", type=int, default=64)
    parser.add_argument("--prompt-tokens", type=int, default=11)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3, help="interleaved repeats of each timing")
    parser.add_argument("--quick", action="store_true", help="smoke test: 8 steps, 1 repeat, fewer kernel calls")
    parser.add_argument("--torch-compile", action="store_true",
                        help="also time option (b): torch.compile of the Python step with the kernels as custom ops")
    parser.add_argument("--json", nargs="?", const="", default=None)
    args = parser.parse_args()
    if args.quick:
        args.steps, args.repeats = 8, 1
    if args.model != "smollm2-gguf":
        args.activations = ["float"]
    common.print_header("decode_profile", f"model={args.model} steps={args.steps} threads={args.threads}")

    import torch

    torch.set_num_threads(args.threads)
    prompt = torch.arange(1, args.prompt_tokens + 1)[None]
    paths = list(args.paths)
    native_paths = [path for path in paths if path != "python"]
    if native_paths:
        try:
            from hugkit.native import native_available

            available = native_available()
        except ImportError as error:
            print(f"native step: not in this checkout ({error}); profiling the Python path only")
            available = False
        if not available:
            print("native step: not available here (see the log); profiling the Python path only")
            paths = [path for path in paths if path == "python"]
            native_paths = []

    payload = {"args": vars(args), "settings": {}}
    split_rows, step_rows, dispatch_rows, sweep_rows, compile_rows = [], [], [], [], []
    for activations in args.activations:
        model = load_model(args.model, activations)
        setting = f"{args.model} act={activations}"
        step_times(model, "python", prompt, 4)  # warm-up: kernels loaded
        # Uninstrumented step times, interleaved, at 1 and 2 threads.
        per = {(path, threads): [] for path in paths for threads in (1, 2)}
        for repeat in range(args.repeats):
            for path in paths if repeat % 2 == 0 else paths[::-1]:
                for threads in (1, 2):
                    torch.set_num_threads(threads)
                    per[path, threads].append(common.median(step_times(model, path, prompt, args.steps)[0]))
        torch.set_num_threads(args.threads)
        for path in paths:
            one, two = (common.median(per[path, t]) * 1e3 for t in (1, 2))
            step_rows.append([setting, path, one, two, 1e3 / one, 1e3 / two])
        # Instrumented split.
        for path in paths:
            if path == "python":
                with Timers() as timers:
                    times, _ = step_times(model, path, prompt, args.steps)
                total = sum(times)
                seconds = dict(timers.seconds)
            else:
                times, runner = step_times(model, path, prompt, args.steps, profile=True)
                total = sum(times)
                seconds = runner.profile_seconds()
            step_ms = total / args.steps * 1e3
            parts = {k: v / args.steps * 1e3 for k, v in seconds.items()}
            rest = step_ms - sum(parts.values())
            split_rows.append([setting, path, step_ms, parts.get("quantized matmul", 0.0),
                               parts.get("float matmul", 0.0), parts.get("attention", 0.0), rest,
                               f"{1 - rest / step_ms:.0%}"])
            payload["settings"].setdefault(setting, {})[path] = {"step_ms": step_ms, "parts_ms": parts, "rest_ms": rest}
        if "python" in paths:
            ops, kernel_calls = count_dispatches(model, prompt, min(args.steps, 8))
            dispatch_rows.append([setting, "python", ops, kernel_calls, ops + kernel_calls])
        for path in native_paths:
            torch.set_num_threads(2)
            _, runner = step_times(model, path, prompt, 4, profile=True)
            torch.set_num_threads(args.threads)
            regions = runner.profile_counts().get("parallel regions", 0) / 4
            dispatch_rows.append([setting, path, 0.0, 1.0, 1.0, regions])
        # The native step's split threshold at 2 threads.
        torch.set_num_threads(2)
        for path in native_paths:
            sweep = {weights: [] for weights in PARALLEL_SWEEP}
            for repeat in range(args.repeats):
                for weights in PARALLEL_SWEEP if repeat % 2 == 0 else PARALLEL_SWEEP[::-1]:
                    sweep[weights].append(common.median(step_times(model, path, prompt, args.steps,
                                                                   parallel_weights=weights)[0]))
            sweep_rows.append([setting, path] + [common.median(sweep[w]) * 1e3 for w in PARALLEL_SWEEP])
        torch.set_num_threads(args.threads)
        kernel_rows = kernel_threads(model, 20 if args.quick else 200, bool(native_paths))
        headers = ["matmul", "module 1 thread", "module 2 threads", "1t/2t"]
        if native_paths:
            headers += ["native 1 task", "native 2 tasks", "1/2"]
        common.print_table(f"{setting}: batch-1 matmul per call, us", headers, kernel_rows)
        payload["settings"].setdefault(setting, {})["kernels"] = kernel_rows
        if args.torch_compile:
            compile_rows += torch_compile_rows(model, setting, prompt, args.steps)
        del model
    common.print_table(
        f"decode step split, ms per token (prompt {args.prompt_tokens}, {args.steps} steps, {args.threads} threads, "
        "instrumented)",
        ["setting", "path", "step", "quantized mm", "float mm", "attention", "everything else", "in matmul+attn"],
        split_rows,
        ["python: timers around each call (their cost is in 'everything else'); native: timers inside the C++ step"],
    )
    common.print_table(
        "dispatches per token",
        ["setting", "path", "aten ops", "kernel calls", "total from Python", "parallel regions"],
        [row + ["-"] if len(row) == 5 else row for row in dispatch_rows],
        ["native: one Python call per token; parallel regions counted at 2 threads (matmul groups split over the "
         "threads, kernel-internal splits, attention)"],
    )
    if sweep_rows:
        common.print_table(
            "native step at 2 threads, ms per token, by parallel_weights (matmul groups below it stay on one thread)",
            ["setting", "path", "never split", "512K", "128K", "32K"], sweep_rows,
        )
    common.print_table(
        f"decode step, ms per token, 1 vs 2 threads (medians of {args.repeats}, uninstrumented)",
        ["setting", "path", "1 thread ms", "2 threads ms", "1 thread tok/s", "2 threads tok/s"], step_rows,
    )
    if compile_rows:
        common.print_table(
            f"option (b): torch.compile of the Python step, kernels as custom ops ({args.threads} threads)",
            ["setting", "path", "first step s", "ms per token", "tokens = python"], compile_rows,
            ["first step: dynamo + inductor compile in this process (every new cache length compiles again); "
             "tokens = python: inductor's fused norms/SiLU round differently, which int8 activations can turn "
             "into other tokens"],
        )
        payload["torch_compile"] = compile_rows
    if args.json is not None:
        common.save_json("decode_profile", payload, args.json or None)


if __name__ == "__main__":
    main()
