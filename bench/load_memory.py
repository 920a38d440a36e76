"""Peak memory and time to load a checkpoint: hugkit vs transformers `AutoModelForSequenceClassification.from_pretrained`.

    python bench/load_memory.py [--runs 3] [--sentiment-model FOLDER] [--quick] [--json]

Each measurement is a fresh process that first imports torch, the library and the model's class (so import costs
are outside the measurement) and records its RSS (the baseline). It then loads the checkpoint and reads every weight
once, while a thread polls RSS every millisecond (and ru_maxrss gives the exact high-water mark when the load raised
it). Reading the weights matters: safetensors are mmapped, and pages that were never touched are not in RSS yet, so
"RSS right after from_pretrained" flatters a lazy loader; a model in use touches all of its weights. Columns (deltas
over the baseline):
  load peak     peak during from_pretrained alone
  peak +touch   peak through from_pretrained and reading every weight: the number the target is about
  peak/file     peak +touch / size of the weight files on disk
  peak/params   peak +touch / bytes of the parameters as loaded (an fp16 file loaded as fp32 is 2x its file)
  anon peak     peak of RSS minus file-backed pages (mmapped files): memory the kernel cannot drop and re-read
  first load    the first from_pretrained in the process (one-time imports it triggers count); repeat = median of 3 more
Checkpoints: the DistilBERT-base-size fp32 classifier (random weights, bench/.cache/) with each library's default
dtype, and the built-in fp16 sentiment model loaded as float32 (hugkit's CPU default) and as float16.
Target: peak/params <= 1.2x (weights are mmapped on the meta device, not copied).
"""

from __future__ import annotations

import argparse
import json
import sys

import common

TARGET = 1.2

CHILD = r"""
import gc, json, sys, time
sys.path.insert(0, {bench_dir!r})
import common

library, folder, dtype_name = {library!r}, {folder!r}, {dtype_name!r}
architecture = json.load(open(folder + "/config.json"))["architectures"][0]
t0 = time.perf_counter()
import torch
lib = __import__(library)
auto = lib.AutoModelForSequenceClassification
getattr(lib, architecture)  # import the model's module too: only the load itself is measured
import_s = time.perf_counter() - t0
kwargs = {{}} if dtype_name == "default" else {{"dtype": getattr(torch, dtype_name)}}

gc.collect()
base_rss, base_max, base_anon = common.rss_bytes(), common.max_rss_bytes(), common.anon_rss_bytes()
with common.PeakRSS(interval=0.001) as polled:
    t0 = time.perf_counter()
    model = auto.from_pretrained(folder, **kwargs)
    first_load_s = time.perf_counter() - t0
    load_peak = polled.peak
    after_load_rss = common.rss_bytes()
    # Read every weight once: mmapped pages only count in RSS once touched, and a real model touches them all.
    tensors = list(model.parameters()) + list(model.buffers())
    with torch.inference_mode():
        for t in tensors:
            t.sum()
after_max = common.max_rss_bytes()
peak = after_max if after_max > base_max else polled.peak
resident_rss = common.rss_bytes()
with torch.inference_mode():
    ids = torch.tensor([[101, 7592, 2088, 999, 102]])
    model.eval()(input_ids=ids, attention_mask=torch.ones_like(ids))
after_use_rss = common.rss_bytes()
param_bytes = sum(t.numel() * t.element_size() for t in tensors)
dtype = str(next(model.parameters()).dtype).replace("torch.", "")

del model, tensors
gc.collect()
repeat_s = []
for _ in range(3):
    t0 = time.perf_counter()
    again = auto.from_pretrained(folder, **kwargs)
    repeat_s.append(time.perf_counter() - t0)
    del again
    gc.collect()
print("RESULT " + json.dumps(dict(
    import_s=import_s, first_load_s=first_load_s, repeat_load_s=sorted(repeat_s)[1], base_rss=base_rss,
    peak_delta=peak - base_rss, anon_peak_delta=polled.peak_anon - base_anon, peak_from="ru_maxrss" if after_max > base_max else "polled",
    load_peak_delta=load_peak - base_rss, after_load_delta=after_load_rss - base_rss,
    resident_delta=resident_rss - base_rss, after_use_delta=after_use_rss - base_rss,
    param_bytes=param_bytes, dtype=dtype)), flush=True)
"""


def configs(sentiment_model: str | None, quick: bool) -> list[tuple[str, str, str]]:
    """(label, folder, dtype) triples."""
    distilbert = str(common.distilbert_base_checkpoint())
    sentiment, builtin = common.sentiment_checkpoint(sentiment_model)
    name = "built-in sentiment fp16" if builtin else "MiniLM stand-in fp16"
    rows = [("DistilBERT-base fp32", distilbert, "default"), (name, str(sentiment), "float32")]
    if not quick:
        rows.append((name, str(sentiment), "float16"))
    return rows


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=3, help="fresh processes per library per checkpoint (medians)")
    parser.add_argument("--sentiment-model", default=None, help="fp16 folder (default: the built-in sentiment model)")
    parser.add_argument("--quick", action="store_true", help="smoke test: 1 run, two checkpoints")
    parser.add_argument("--json", nargs="?", const="", default=None, help="write JSON (default bench/results/load_memory.json)")
    args = parser.parse_args(argv)
    runs = 1 if args.quick else max(args.runs, 1)
    common.print_header("load_memory", f"runs={runs}")

    rows, results = [], []
    for label, folder, dtype_name in configs(args.sentiment_model, args.quick):
        file_bytes = common.weight_bytes(folder)
        samples: dict[str, list[dict]] = {"hugkit": [], "transformers": []}
        for _ in range(runs):
            for library in samples:  # interleaved
                code = CHILD.format(bench_dir=str(common.BENCH_DIR), library=library, folder=folder, dtype_name=dtype_name)
                child = common.run_python(code, timeout=600)
                if not child.ok:
                    print(child.failure(f"{library} loading {folder}"), file=sys.stderr)
                    continue
                samples[library].append(child.json_line())
        medians = {}
        for library, runs_ok in samples.items():
            if not runs_ok:
                rows.append([label, dtype_name, library, "FAILED"] + [""] * 8)
                continue
            m = {key: common.median(r[key] for r in runs_ok) for key in
                 ("peak_delta", "anon_peak_delta", "load_peak_delta", "after_load_delta", "resident_delta", "after_use_delta",
                  "first_load_s", "repeat_load_s", "import_s")}
            m["param_bytes"], m["dtype"] = runs_ok[0]["param_bytes"], runs_ok[0]["dtype"]
            medians[library] = m
            per_params = m["peak_delta"] / m["param_bytes"]
            rows.append([
                label, dtype_name, library, m["dtype"], common.mib(file_bytes), common.mib(m["load_peak_delta"]),
                common.mib(m["peak_delta"]), f"{m['peak_delta'] / file_bytes:.2f}x",
                f"{per_params:.2f}x {common.target_check(per_params, TARGET, False)}",
                common.mib(m["anon_peak_delta"]), f"{m['first_load_s']:.3f}", f"{m['repeat_load_s']:.3f}",
            ])
            results.append({"checkpoint": label, "folder": folder, "dtype_arg": dtype_name, "library": library,
                            "file_bytes": file_bytes, **m, "runs": runs_ok})
        if len(medians) == 2:
            h, t = medians["hugkit"], medians["transformers"]
            rows.append(["", "", "transformers/hugkit", "", "",
                         common.fmt_ratio(common.ratio(t["load_peak_delta"], h["load_peak_delta"])),
                         common.fmt_ratio(common.ratio(t["peak_delta"], h["peak_delta"])), "", "",
                         common.fmt_ratio(common.ratio(t["anon_peak_delta"], h["anon_peak_delta"])),
                         common.fmt_ratio(common.ratio(t["first_load_s"], h["first_load_s"])),
                         common.fmt_ratio(common.ratio(t["repeat_load_s"], h["repeat_load_s"]))])

    common.print_table(
        f"Loading AutoModelForSequenceClassification.from_pretrained (fresh processes, medians of {runs})",
        ["checkpoint", "dtype arg", "library", "dtype", "file", "load peak", "peak +touch", "peak/file",
         "peak/params <=1.2x", "anon peak", "first load s", "repeat s"],
        rows,
        notes=["deltas are over the RSS after importing torch, the library and the model class.",
               "load peak: during from_pretrained only (lazily mmapped weights are not resident yet); peak +touch: "
               "through from_pretrained and then reading every weight once; ratios and the target use peak +touch.",
               "first load: the first from_pretrained in the process (one-time imports it triggers included).",
               "'default' = each library's own default dtype (transformers: 'auto' = the file's dtype; hugkit: float32 on CPU)."],
    )
    payload = {"runs": runs, "results": results, "versions": common.library_versions()}
    if args.json is not None:
        common.save_json("load_memory", payload, args.json or None)
    return payload


if __name__ == "__main__":
    main()
