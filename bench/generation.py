"""Greedy decoding speed, hugkit vs transformers, same weights, one process, interleaved (issue 3, item 8, part).

    python bench/generation.py [--quick] [--batch-sizes 1 8] [--new-tokens 128] [--repeats 3]

Model: a GPT-2-124M-size checkpoint with seeded random weights (transformers' GPT2Config() defaults), saved once into
bench/.cache/. Prompt: 32 random token ids per row; greedy; min_new_tokens = max_new_tokens so EOS never stops a run
early. Reports new tokens/s (batch x new tokens / generate time), time to first token (generate with one new token),
and decode as a fraction of this machine's memory-bandwidth roofline: bytes of weights read per step x steps/s over the
bandwidth measured here by a large fp32 GEMV. Both libraries run fp32 with the same torch thread count.
Not covered yet: SmolLM2 from GGUF (transformers' GGUF loading needs `accelerate`, which is not installed here).
"""

from __future__ import annotations

import argparse
import time

import common


def gpt2_checkpoint():
    def build(folder):
        import torch
        import transformers

        torch.manual_seed(0)
        transformers.GPT2LMHeadModel(transformers.GPT2Config()).save_pretrained(folder)

    return common._build_once(common.CACHE_DIR / "gpt2-124m-random", build)


def memory_bandwidth_gbs(repeats: int = 5) -> float:
    """GB/s of a GEMV over 256 MB of fp32 weights (the access pattern of batch-1 decoding)."""
    import torch

    weight = torch.randn(8192, 8192)
    vector = torch.randn(8192)
    weight @ vector
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        weight @ vector
        times.append(time.perf_counter() - start)
    return weight.numel() * 4 / common.median(times) / 1e9


def timed_generate(model, input_ids, new_tokens: int) -> tuple[float, object]:
    import torch

    mask = torch.ones_like(input_ids)
    start = time.perf_counter()
    with torch.inference_mode():
        out = model.generate(
            input_ids=input_ids, attention_mask=mask, max_new_tokens=new_tokens, min_new_tokens=new_tokens,
            do_sample=False, pad_token_id=0,
        )
    return time.perf_counter() - start, out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 8])
    parser.add_argument("--prompt-tokens", type=int, default=32)
    parser.add_argument("--new-tokens", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--quick", action="store_true", help="smoke test: 8 new tokens, 1 repeat")
    parser.add_argument("--json", nargs="?", const="", default=None)
    args = parser.parse_args()
    if args.quick:
        args.new_tokens, args.repeats = 8, 1
    common.print_header("generation", f"new_tokens={args.new_tokens} repeats={args.repeats} threads={args.threads}")

    import torch
    import transformers

    import hugkit

    torch.set_num_threads(args.threads)
    folder = gpt2_checkpoint()
    models = {
        "hugkit": hugkit.AutoModelForCausalLM.from_pretrained(folder),
        "transformers": transformers.AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32).eval(),
    }
    weight_bytes = sum(p.numel() * p.element_size() for p in models["hugkit"].parameters())
    bandwidth = memory_bandwidth_gbs()
    generator = torch.Generator().manual_seed(0)

    rows, results = [], []
    for batch in args.batch_sizes:
        prompt = torch.randint(0, 50257, (batch, args.prompt_tokens), generator=generator)
        speed, first, outputs = {}, {}, {}
        for name, model in models.items():  # warm-up
            timed_generate(model, prompt, 2)
        runs = {name: [] for name in models}
        ttft = {name: [] for name in models}
        for repeat in range(args.repeats):
            order = list(models) if repeat % 2 == 0 else list(reversed(models))
            for name in order:
                seconds, outputs[name] = timed_generate(models[name], prompt, args.new_tokens)
                runs[name].append(seconds)
                ttft[name].append(timed_generate(models[name], prompt, 1)[0])
        for name in models:
            speed[name] = batch * args.new_tokens / common.median(runs[name])
            first[name] = common.median(ttft[name])
        same = torch.equal(outputs["hugkit"], outputs["transformers"])
        for name in models:
            steps_per_s = speed[name] / batch
            roofline = weight_bytes * steps_per_s / (bandwidth * 1e9)
            rows.append([
                f"b{batch}", name, speed[name], first[name] * 1e3, f"{roofline:.0%}",
                common.fmt_ratio(common.ratio(speed["hugkit"], speed["transformers"])) if name == "hugkit" else "-",
                "identical" if same else "DIFFER",
            ])
        results.append({"batch": batch, "tokens_per_s": speed, "ttft_s": first, "identical": same})

    common.print_table(
        f"GPT-2-124M greedy, prompt {args.prompt_tokens} -> {args.new_tokens} new tokens, fp32 (medians of {args.repeats})",
        ["batch", "library", "new tok/s", "TTFT ms", "of roofline", "hugkit/transformers", "tokens"],
        rows,
        [
            f"roofline: {weight_bytes / 1e6:.0f} MB of weights read per step at {bandwidth:.1f} GB/s (GEMV over 256 MB here)",
            "targets (issue 3): fp32 decode >= 1.1x transformers and >= 70% of roofline",
        ],
    )
    if args.json is not None:
        common.save_json("generation", {"args": vars(args), "bandwidth_gbs": bandwidth, "results": results}, args.json or None)


if __name__ == "__main__":
    main()
