"""GPTQ: int4 / int8 weights chosen with calibration data instead of rounded one by one.

Round-to-nearest (RTN) rounds every weight on its own. GPTQ (Frantar et al., 2022) minimises what matters, each
layer's output error on real inputs ``||X W^T - X Q^T||^2``, which depends on the weights only through
``H = X^T X`` (X: the layer's inputs, one row per token). It quantizes one input column at a time and moves that
column's rounding error onto the columns not yet quantized, in the proportions H says cancel it best (the Optimal
Brain Surgeon update)::

    for each column i:  q_i = round(w_i);  e = (w_i - q_i) / U_ii;  w_j -= e * U_ij  for every j > i

where U is the upper Cholesky factor of H^-1 (its row i is H^-1's row i once columns < i are eliminated). The
updates inside a block of 128 columns are applied at once, the rest lazily (one matmul per block). A ridge is added
to H's diagonal first ("dampening", see ``dampening``): a little so the solve is stable, more when few calibration
tokens make H a noisy estimate.

Here:
1. collect: the float model runs the calibration batches; a forward pre-hook on each layer to quantize adds X^T X
   of its input (padding positions dropped) to that layer's sum. Layers fed the same tensor (q/k/v, gate/up)
   share one sum. One shot: every layer sees the float model's inputs, not those of already-quantized layers
   (measured on MiniLM, quantizing layer by layer on the quantized model's own inputs gained < 0.001 cosine).
2. quantize: GPTQ into exactly the formats RTN writes (Int4Linear groups: a group's scale/zero is chosen, with
   int4.fit_groups' clip search, when its first column is reached, from the already-updated weights;
   Int8Linear: RTN's per-row scales), so a calibrated model saves and loads like any other.

Measured (all-MiniLM-L6-v2, sentence-embedding cosine to fp32 over the 8 sentences of
tests/quantization/test_accuracy.py, min / mean; calibrated on the 128 sentences of test_gptq.py, ~7 s on one CPU
thread): int4 group 64 RTN 0.952 / 0.968 -> GPTQ 0.984 / 0.987 (0.982 / 0.985 with 64 of the sentences);
int8 RTN 0.9994 / 0.9996 -> GPTQ 0.9998 / 0.9999. Act-order (columns by decreasing H diagonal, group scales fixed
beforehand from the float weights so groups stay contiguous) gave int4 0.983 / 0.988 (0.979 / 0.986 with 64), and
on 293 other texts mean 0.981 vs 0.981: no consistent gain, so it is off (``gptq_layer(act_order=True)`` keeps it
for measuring).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Iterator, Mapping
from functools import partial
from typing import Any, NamedTuple

import torch
from torch import nn

from .config import Int4WeightOnly, Int8WeightOnly, QuantizationConfig
from .int4 import Int4Linear, fit_groups, pack_nibbles
from .int8 import Int8Linear, channel_scales

logger = logging.getLogger(__name__)

BLOCK_COLUMNS = 128  # columns updated eagerly; the rest get one matmul per block
_ROWS_AT_ONCE = 4096  # output rows quantized together (rows are independent given H): bounds a big head's memory
_MAX_DAMPENING_RETRIES = 4


def check_calibration_scheme(config: QuantizationConfig) -> None:
    if not isinstance(config, (Int4WeightOnly, Int8WeightOnly)):
        raise ValueError(f"calibration= (GPTQ) supports the int4 and int8 weight-only schemes, not {config}. "
                         "Use quantize_(model, Int4WeightOnly(group_size=...), calibration=...) or 'int8', or drop "
                         "calibration= to round to nearest.")


def calibrated_layers(model: nn.Module, layers: list[tuple[str, nn.Module]], config: QuantizationConfig,
                      calibration: Any) -> Iterator[tuple[str, nn.Module]]:
    """(name, quantized replacement) of each layer, quantized with GPTQ on the inputs the calibration batches give
    it. Runs the whole calibration before yielding, so the caller may replace layers as they come."""
    check_calibration_scheme(config)
    started = time.perf_counter()
    inputs = collect_inputs(model, dict(layers), calibration)
    collected = time.perf_counter()
    from ..logging import tqdm  # off everywhere after hugkit.logging.disable_progress_bar()

    from .quantize import quantize_layer

    for name, module in tqdm(layers, desc="GPTQ", unit="layer", delay=3, leave=False):  # shown after 3 s only
        if name in inputs:
            yield name, gptq_layer(module, inputs[name], config)
        else:  # not run by the model's forward (e.g. a head the calibration call skips)
            logger.warning("%s received no input from the calibration batches; it is rounded to nearest.", name)
            yield name, quantize_layer(module, config)
    logger.info("GPTQ: inputs collected in %.1f s, %d layers quantized in %.1f s.", collected - started, len(layers),
                time.perf_counter() - collected)


# --- 1. collect X^T X per layer ---------------------------------------------------------------------
class LayerInputs(NamedTuple):
    """What GPTQ needs to know of a layer's calibration inputs: X^T X and the number of rows (tokens) of X."""

    xtx: torch.Tensor
    tokens: int


class _InputSums:
    """Forward pre-hooks adding X^T X of each watched layer's input to its sum (float32, on the input's device).

    A layer called right after another with the very same input tensor (q/k/v, gate/up) shares that layer's sum:
    decided on the first call, then checked on every later call.
    """

    def __init__(self, layers: dict[str, nn.Module]) -> None:
        self.sums: dict[str, torch.Tensor] = {}  # leader layer -> sum of X^T X
        self.tokens: dict[str, int] = {}  # leader layer -> rows added
        self.leader: dict[str, str] = {}  # layer -> the layer whose sum it shares (itself when it owns one)
        self.token_mask: torch.Tensor | None = None  # (batch, seq) bool of the batch running now
        self._latest: tuple[torch.Tensor | None, str | None] = (None, None)  # (input, leader) of the latest call
        self._handles = [module.register_forward_pre_hook(partial(self._add, name)) for name, module in layers.items()]

    def start_batch(self, token_mask: torch.Tensor | None) -> None:
        self.token_mask, self._latest = token_mask, (None, None)

    def remove(self) -> None:
        for handle in self._handles:
            handle.remove()
        self._latest, self.token_mask = (None, None), None

    def result(self) -> dict[str, LayerInputs]:
        return {name: LayerInputs(self.sums[leader], self.tokens[leader]) for name, leader in self.leader.items()}

    def _add(self, name: str, module: nn.Module, args: tuple) -> None:
        if not args:  # called with keyword arguments only: no statistics (the layer is then rounded to nearest)
            return
        x = args[0]
        latest_input, latest_leader = self._latest
        if name not in self.leader:
            self.leader[name] = latest_leader if x is latest_input else name
        leader = self.leader[name]
        if leader != name:  # the leader already added this very tensor
            if x is not latest_input or leader != latest_leader:
                raise RuntimeError(f"GPTQ calibration: {name} was first fed the same input as {leader}, then a "
                                   "different one; this model's layers cannot share calibration statistics.")
            return
        rows = self._token_rows(x)
        total = self.sums.get(name)
        if total is None:
            total = self.sums[name] = torch.zeros(rows.shape[1], rows.shape[1], device=rows.device)
        total.addmm_(rows.t(), rows)
        self.tokens[name] = self.tokens.get(name, 0) + rows.shape[0]
        self._latest = (x, name)

    def _token_rows(self, x: torch.Tensor) -> torch.Tensor:
        """The input as (tokens, features) float32 rows, padding dropped where the input is (batch, seq, features)."""
        x = x.detach()
        if self.token_mask is not None and x.shape[:-1] == self.token_mask.shape:
            x = x[self.token_mask.to(x.device)]
        return x.reshape(-1, x.shape[-1]).float()


def collect_inputs(model: nn.Module, layers: dict[str, nn.Module], calibration: Any) -> dict[str, LayerInputs]:
    """{layer name: its LayerInputs} from the float model's forward passes over the calibration batches."""
    sums = _InputSums(layers)
    was_training = model.training
    model.eval()  # no dropout in the statistics
    batches = 0
    try:
        with torch.no_grad():
            for batches, batch in enumerate(_calibration_batches(calibration), start=1):
                _run_batch(model, batch, batches, sums)
    finally:
        sums.remove()
        model.train(was_training)
    if batches == 0:
        raise ValueError("calibration= is empty: pass at least one batch, e.g. "
                         "calibration=[dict(tokenizer(texts, padding=True, return_tensors='pt'))].")
    return sums.result()


def _calibration_batches(calibration: Any) -> Iterable:
    if isinstance(calibration, (Mapping, torch.Tensor)):  # one batch passed as it is
        return [calibration]
    if isinstance(calibration, (str, bytes)) or not isinstance(calibration, Iterable):
        raise ValueError(f"calibration= expects an iterable of model inputs (dicts of tensors, or input_ids "
                         f"tensors); got {type(calibration).__name__}. Tokenize first, e.g. calibration="
                         "[dict(tokenizer(texts, padding=True, return_tensors='pt'))].")
    return calibration


def _run_batch(model: nn.Module, batch: Any, number: int, sums: _InputSums) -> None:
    device = next((p.device for p in model.parameters()), torch.device("cpu"))
    if isinstance(batch, Mapping):
        inputs = {key: value.to(device) if isinstance(value, torch.Tensor) else value for key, value in batch.items()}
        mask = inputs.get("attention_mask")
        sums.start_batch(mask.bool() if isinstance(mask, torch.Tensor) else None)
        call = partial(model, **inputs)
    elif isinstance(batch, torch.Tensor):
        sums.start_batch(None)
        call = partial(model, batch.to(device))
    else:
        raise ValueError(f"calibration batch {number} is a {type(batch).__name__}; each batch must be a dict of "
                         "tensors (passed as model(**batch)) or an input_ids tensor (model(input_ids)). Tokenize "
                         "texts first: dict(tokenizer(texts, padding=True, return_tensors='pt')).")
    try:
        call()
    except Exception as error:
        how = "model(**batch)" if isinstance(batch, Mapping) else "model(input_ids)"
        raise ValueError(f"calibration batch {number}: {how} failed for {type(model).__name__} "
                         f"({type(error).__name__}: {error}). Each batch must be an input the model's forward "
                         "accepts, e.g. dict(tokenizer(texts, padding=True, return_tensors='pt')).") from error


# --- 2. GPTQ on one layer ---------------------------------------------------------------------------------
class _Grid:
    """One quantization grid per (row, group): ``w ~= q * scale + zero`` with integer q in [low, high]."""

    def __init__(self, config: QuantizationConfig, in_features: int) -> None:
        self.int4 = isinstance(config, Int4WeightOnly)
        self.group_size = config.group_size if self.int4 else in_features  # int8: one scale per row
        self.low, self.high = (0, 15) if self.int4 else (-127, 127)

    def fit(self, weights: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Scale and zero (rows,) for a (rows, group_size) slice, chosen as round-to-nearest would."""
        if self.int4:
            _, scales, zeros = fit_groups(weights, self.group_size)
            return scales[:, 0], zeros[:, 0]
        scales = channel_scales(weights)
        return scales, torch.zeros_like(scales)

    def round(self, w: torch.Tensor, scale: torch.Tensor, zero: torch.Tensor) -> torch.Tensor:
        return torch.round((w - zero) / scale).clamp_(self.low, self.high)


def gptq_layer(module: nn.Module, inputs: LayerInputs, config: QuantizationConfig,
               act_order: bool = False) -> nn.Module:
    """The Int4Linear / Int8Linear replacing ``module`` (nn.Linear or Conv1D), given its calibration inputs.

    ``act_order`` visits the columns by decreasing input energy (H's diagonal) with static groups; measured on
    MiniLM it did not help consistently (see the module docstring), so quantize_ leaves it off.
    """
    from .quantize import float_weight

    weight = float_weight(module).detach().float()
    out_features, in_features = weight.shape
    grid = _Grid(config, in_features)
    xtx = inputs.xtx.to(weight.device)
    order = torch.argsort(xtx.diagonal(), descending=True).cpu() if act_order else torch.arange(in_features)
    factor = inverse_hessian_factor(xtx[order][:, order], inputs.tokens)
    parts = [gptq_rows(weight[start : start + _ROWS_AT_ONCE], factor, order, grid)
             for start in range(0, out_features, _ROWS_AT_ONCE)]
    q, scales, zeros = (torch.cat(tensors) for tensors in zip(*parts))
    if grid.int4:
        return Int4Linear(in_features, out_features, pack_nibbles(q), scales, zeros, module.bias, config)
    return Int8Linear(in_features, out_features, q.to(torch.int8).contiguous(), scales[:, 0].contiguous(),
                      module.bias, config)


def dampening(in_features: int, tokens: int) -> float:
    """The fraction of H's mean diagonal added to its diagonal: 1% (GPTQ's usual value) plus 10% of features per
    token. X^T X from fewer tokens than features is singular, and noisy well beyond that; the ridge then pulls the
    solution toward plain rounding instead of fitting the calibration sentences' quirks. Measured on MiniLM int4
    (mean embedding cosine over 293 texts used for neither): with 64 of test_gptq.py's sentences (~840 tokens) a
    fixed 1% gave 0.974, 10% 0.979, this rule 0.979; with those plus 448 movie reviews (~13k tokens) 1% gave 0.985,
    10% 0.983, this rule 0.985. (Ledoit-Wolf shrinkage, tried instead, under-dampened: tokens are not independent.)
    """
    return 0.01 + 0.1 * in_features / max(tokens, 1)


def inverse_hessian_factor(xtx: torch.Tensor, tokens: int) -> torch.Tensor:
    """Upper Cholesky factor of the dampened H^-1. An input never seen in calibration (zero diagonal) gets a unit
    diagonal: its column is then rounded to nearest and passes no error on."""
    h = xtx.double()  # float32's rounding would be amplified by the inverse of a near-singular H
    dead = h.diagonal() == 0
    h[dead, dead] = 1.0
    ridge = dampening(h.shape[0], tokens) * h.diagonal().mean()
    for _ in range(_MAX_DAMPENING_RETRIES):
        h.diagonal().add_(ridge)
        lower, info = torch.linalg.cholesky_ex(h)
        if info == 0:
            return torch.linalg.cholesky(torch.cholesky_inverse(lower), upper=True).float()
        ridge = ridge * 10  # not positive definite in floating point: dampen harder
    raise RuntimeError("GPTQ: the calibration Hessian is not positive definite even after dampening.")


def gptq_rows(weight: torch.Tensor, factor: torch.Tensor, order: torch.Tensor,
              grid: _Grid) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """GPTQ of a (rows, in) float weight, its columns visited in ``order``, with ``factor`` from
    inverse_hessian_factor (in that order). Returns q (rows, in) in the original column order, and scales and zeros
    (rows, groups).

    Works on the transpose, so a column is a contiguous row. In the original order a group's grid is fitted when its
    first column is reached (the block size is a multiple of the group size, so the group's columns are all
    up to date then); any other order fits every group's grid beforehand from the float weights (static groups).
    """
    rows, in_features = weight.shape
    group_size = grid.group_size
    # int8's single per-row grid is fitted before any update either way
    static = not grid.int4 or not torch.equal(order, torch.arange(in_features, device=order.device))
    groups = in_features // group_size
    scales, zeros = torch.empty(rows, groups, device=weight.device), torch.empty(rows, groups, device=weight.device)
    if static:
        for g in range(groups):
            scales[:, g], zeros[:, g] = grid.fit(weight[:, g * group_size : (g + 1) * group_size])
    columns = weight[:, order].t().contiguous()  # (in, rows), in visiting order; updated in place
    q = torch.empty_like(columns)
    block = group_size * max(1, BLOCK_COLUMNS // group_size) if not static else BLOCK_COLUMNS
    for start in range(0, in_features, block):
        stop = min(start + block, in_features)
        errors = torch.empty(stop - start, rows, device=weight.device)
        for i in range(start, stop):
            group = int(order[i]) // group_size
            if not static and i % group_size == 0:
                scales[:, group], zeros[:, group] = grid.fit(columns[i : i + group_size].t())
            scale, zero = scales[:, group], zeros[:, group]
            q[i] = grid.round(columns[i], scale, zero)
            error = (columns[i] - (q[i] * scale + zero)) / factor[i, i]
            columns[i + 1 : stop].addr_(factor[i, i + 1 : stop], error, alpha=-1)
            errors[i - start] = error
        columns[stop:].addmm_(factor[start:stop, stop:].t(), errors, alpha=-1)
    restored = torch.empty_like(q)
    restored[order] = q  # back to the original column order
    return restored.t().contiguous(), scales, zeros
