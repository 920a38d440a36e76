"""VITS building blocks behind the text encoder: weight-normalised convolutions, the WaveNet stack, the
normalising flows (mean-only residual couplings for the spectrogram prior, rational-quadratic spline couplings
for the stochastic durations), the HiFi-GAN vocoder and the (training-only) posterior encoder.

Module and parameter names are transformers' (``flow.flows.0.wavenet.in_layers.0.parametrizations.weight.original1``),
so checkpoints load unchanged. Only the inference direction of each flow is implemented: VITS synthesises by
running its flows in reverse; the forward direction is needed only to train.

Weight norm is folded once, when the weights are loaded: a weight-normalised conv keeps transformers' two
parameters, but ``original1`` holds the effective weight ``g * v / ||v||`` and ``original0`` its norm. That is
the same parametrisation (transformers recomputes exactly that weight from it), so saved checkpoints stay loadable
by transformers, while a forward pass reads the weight directly instead of renormalising it every call.
"""

from __future__ import annotations

import math
from typing import Any, Iterable, Iterator

import torch
import torch.nn.functional as F
from torch import nn

# --- weight norm ---------------------------------------------------------------------------------

# Checkpoint spellings of a weight-norm pair: transformers 5 (torch parametrizations) and older saves.
_MAGNITUDE_SUFFIXES = ("parametrizations.weight.original0", "weight_g")
_DIRECTION_SUFFIXES = ("parametrizations.weight.original1", "weight_v")
MAGNITUDE_KEY = _MAGNITUDE_SUFFIXES[0]
DIRECTION_KEY = _DIRECTION_SUFFIXES[0]


def _weight_norm_part(key: str) -> tuple[str, int] | None:
    """(module prefix, 0 for the magnitude / 1 for the direction) when ``key`` is half of a weight-norm pair."""
    for part, suffixes in enumerate((_MAGNITUDE_SUFFIXES, _DIRECTION_SUFFIXES)):
        for suffix in suffixes:
            if key == suffix or key.endswith("." + suffix):
                return key[: len(key) - len(suffix)], part
    return None


def fold_weight_norm(magnitude: torch.Tensor, direction: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(norm of the weight, weight) for a weight-norm pair (g, v) over dim 0: weight = g * v / ||v||.

    Computed in float32 (the checkpoint may be half precision) with the same kernel torch's weight_norm uses,
    so the weight is bit-identical to the one transformers computes in each forward pass."""
    weight = torch._weight_norm(direction.float(), magnitude.float(), 0)
    norm = torch.norm_except_dim(weight, 2, 0)
    return norm.to(magnitude.dtype), weight.to(direction.dtype)


def fold_weight_norm_tensors(tensors: Iterable[tuple[str, torch.Tensor]]) -> Iterator[tuple[str, torch.Tensor]]:
    """Checkpoint tensors with every weight-norm pair (either spelling) folded and named as transformers 5 does.
    A pair's first half waits for its partner; an unpaired half passes through, so the strict loader names it."""
    waiting: dict[str, dict[int, torch.Tensor]] = {}
    for key, tensor in tensors:
        found = _weight_norm_part(key)
        if found is None:
            yield key, tensor
            continue
        prefix, part = found
        halves = waiting.setdefault(prefix, {})
        halves[part] = tensor
        if len(halves) == 2:
            del waiting[prefix]
            norm, weight = fold_weight_norm(halves[0], halves[1])
            yield prefix + MAGNITUDE_KEY, norm
            yield prefix + DIRECTION_KEY, weight
    for prefix, halves in waiting.items():
        for part, tensor in halves.items():
            yield prefix + (MAGNITUDE_KEY if part == 0 else DIRECTION_KEY), tensor


class _WeightNormParameters(nn.Module):
    """Holds ``original0`` (per-output-channel magnitude) and ``original1`` (the folded weight)."""

    def __init__(self, weight_shape: tuple[int, ...]) -> None:
        super().__init__()
        self.original0 = nn.Parameter(torch.empty(weight_shape[0], *([1] * (len(weight_shape) - 1))))
        self.original1 = nn.Parameter(torch.empty(weight_shape))


class WeightNormConv1d(nn.Module):
    """A Conv1d under torch's ``weight_norm`` parametrisation, with the weight folded (see the module docstring).

    ``load_state_dict`` folds too (a pre-hook), so a transformers state dict loads into it correctly."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, dilation: int = 1, padding: int = 0) -> None:
        super().__init__()
        self.dilation, self.padding = dilation, padding
        self.parametrizations = nn.ModuleDict({"weight": _WeightNormParameters((out_channels, in_channels, kernel_size))})
        self.bias = nn.Parameter(torch.empty(out_channels))
        weight = self.parametrizations["weight"].original1
        nn.init.kaiming_normal_(weight)
        bound = 1 / math.sqrt(in_channels * kernel_size)
        nn.init.uniform_(self.bias, -bound, bound)
        if not weight.is_meta:
            with torch.no_grad():
                self.parametrizations["weight"].original0.copy_(torch.norm_except_dim(weight, 2, 0))
        self._register_load_state_dict_pre_hook(self._fold_on_load)

    @property
    def weight(self) -> torch.Tensor:
        return self.parametrizations["weight"].original1

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        return F.conv1d(hidden_states, self.weight, self.bias, padding=self.padding, dilation=self.dilation)

    @staticmethod
    def _fold_on_load(state_dict: dict, prefix: str, *args: Any) -> None:
        halves = []
        for suffixes in (_MAGNITUDE_SUFFIXES, _DIRECTION_SUFFIXES):
            key = next((prefix + s for s in suffixes if prefix + s in state_dict), None)
            halves.append(state_dict.pop(key) if key is not None else None)
        if halves[0] is not None and halves[1] is not None:
            halves = list(fold_weight_norm(halves[0], halves[1]))
        for key, tensor in zip((MAGNITUDE_KEY, DIRECTION_KEY), halves):
            if tensor is not None:
                state_dict[prefix + key] = tensor


# --- WaveNet (the flows' and the posterior encoder's coupling network) -----------------------------


class VitsWaveNet(nn.Module):
    """Gated dilated convolutions with residual and skip outputs; optional speaker conditioning."""

    def __init__(self, config: Any, num_layers: int) -> None:
        super().__init__()
        self.hidden_size = config.hidden_size
        self.num_layers = num_layers
        self.dropout = nn.Dropout(config.wavenet_dropout)
        channels = config.hidden_size
        if config.speaker_embedding_size != 0:
            self.cond_layer = WeightNormConv1d(config.speaker_embedding_size, 2 * channels * num_layers, 1)
        self.in_layers = nn.ModuleList()
        self.res_skip_layers = nn.ModuleList()
        for i in range(num_layers):
            dilation = config.wavenet_dilation_rate**i
            padding = (config.wavenet_kernel_size * dilation - dilation) // 2
            self.in_layers.append(WeightNormConv1d(channels, 2 * channels, config.wavenet_kernel_size, dilation, padding))
            # The last layer has no residual half: its whole output is skip.
            self.res_skip_layers.append(WeightNormConv1d(channels, 2 * channels if i < num_layers - 1 else channels, 1))

    def forward(self, inputs: torch.Tensor, padding_mask: torch.Tensor, global_conditioning: torch.Tensor | None = None):
        channels = self.hidden_size
        outputs = torch.zeros_like(inputs)
        if global_conditioning is not None:
            global_conditioning = self.cond_layer(global_conditioning)
        for i in range(self.num_layers):
            hidden_states = self.in_layers[i](inputs)
            if global_conditioning is not None:
                hidden_states = hidden_states + global_conditioning[:, 2 * channels * i : 2 * channels * (i + 1)]
            acts = torch.tanh(hidden_states[:, :channels]) * torch.sigmoid(hidden_states[:, channels:])
            res_skip = self.res_skip_layers[i](self.dropout(acts))
            if i < self.num_layers - 1:
                inputs = (inputs + res_skip[:, :channels]) * padding_mask
                outputs = outputs + res_skip[:, channels:]
            else:
                outputs = outputs + res_skip
        return outputs * padding_mask


# --- prior flow: mean-only residual couplings ------------------------------------------------------


class VitsResidualCouplingLayer(nn.Module):
    def __init__(self, config: Any) -> None:
        super().__init__()
        self.half_channels = config.flow_size // 2
        self.conv_pre = nn.Conv1d(self.half_channels, config.hidden_size, 1)
        self.wavenet = VitsWaveNet(config, num_layers=config.prior_encoder_num_wavenet_layers)
        self.conv_post = nn.Conv1d(config.hidden_size, self.half_channels, 1)

    def inverse(self, inputs: torch.Tensor, padding_mask: torch.Tensor, global_conditioning: torch.Tensor | None):
        first_half, second_half = inputs.split(self.half_channels, dim=1)
        hidden_states = self.conv_pre(first_half) * padding_mask
        hidden_states = self.wavenet(hidden_states, padding_mask, global_conditioning)
        mean = self.conv_post(hidden_states) * padding_mask
        return torch.cat([first_half, (second_half - mean) * padding_mask], dim=1)


class VitsResidualCouplingBlock(nn.Module):
    def __init__(self, config: Any) -> None:
        super().__init__()
        self.flows = nn.ModuleList(VitsResidualCouplingLayer(config) for _ in range(config.prior_encoder_num_flows))

    def forward(self, inputs, padding_mask, global_conditioning=None, reverse: bool = True):
        if not reverse:
            raise NotImplementedError("hugkit runs VITS for inference only: the prior flow runs in reverse.")
        for flow in reversed(self.flows):
            inputs = flow.inverse(torch.flip(inputs, [1]), padding_mask, global_conditioning)
        return inputs


# --- stochastic duration predictor flows ----------------------------------------------------------


class VitsDilatedDepthSeparableConv(nn.Module):
    def __init__(self, config: Any, dropout_rate: float = 0.0) -> None:
        super().__init__()
        kernel_size = config.duration_predictor_kernel_size
        channels = config.hidden_size
        self.num_layers = config.depth_separable_num_layers
        self.dropout = nn.Dropout(dropout_rate)
        self.convs_dilated = nn.ModuleList()
        self.convs_pointwise = nn.ModuleList()
        self.norms_1 = nn.ModuleList()
        self.norms_2 = nn.ModuleList()
        for i in range(self.num_layers):
            dilation = kernel_size**i
            padding = (kernel_size * dilation - dilation) // 2
            self.convs_dilated.append(
                nn.Conv1d(channels, channels, kernel_size, groups=channels, dilation=dilation, padding=padding)
            )
            self.convs_pointwise.append(nn.Conv1d(channels, channels, 1))
            self.norms_1.append(nn.LayerNorm(channels))  # default eps, as in transformers (not layer_norm_eps)
            self.norms_2.append(nn.LayerNorm(channels))

    def forward(self, inputs: torch.Tensor, padding_mask: torch.Tensor, global_conditioning: torch.Tensor | None = None):
        if global_conditioning is not None:
            inputs = inputs + global_conditioning
        for i in range(self.num_layers):
            hidden_states = self.convs_dilated[i](inputs * padding_mask)
            hidden_states = F.gelu(self.norms_1[i](hidden_states.transpose(1, -1)).transpose(1, -1))
            hidden_states = self.convs_pointwise[i](hidden_states)
            hidden_states = F.gelu(self.norms_2[i](hidden_states.transpose(1, -1)).transpose(1, -1))
            inputs = inputs + self.dropout(hidden_states)
        return inputs * padding_mask


def _bin_edges(unnormalized: torch.Tensor, min_size: float, bound: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Softmax bin sizes (each at least ``min_size`` of the range) -> (left edges incl. both ends, sizes)."""
    num_bins = unnormalized.shape[-1]
    sizes = min_size + (1 - min_size * num_bins) * torch.softmax(unnormalized, dim=-1)
    edges = F.pad(torch.cumsum(sizes, dim=-1), (1, 0), value=0.0)
    edges = 2 * bound * edges - bound
    edges[..., 0] = -bound
    edges[..., -1] = bound
    return edges, edges[..., 1:] - edges[..., :-1]


def inverse_rational_quadratic_spline(
    inputs: torch.Tensor,
    unnormalized_widths: torch.Tensor,
    unnormalized_heights: torch.Tensor,
    unnormalized_derivatives: torch.Tensor,
    tail_bound: float,
    min_bin_width: float = 1e-3,
    min_bin_height: float = 1e-3,
    min_derivative: float = 1e-3,
) -> torch.Tensor:
    """Inverse of the monotonic rational-quadratic spline on [-tail_bound, tail_bound], identity outside it
    (Durkan et al., "Neural Spline Flows"), elementwise over ``inputs`` with the bins in the last dim of the rest.

    Every element is evaluated (inputs clamped into range) and the identity is chosen outside, rather than
    gathering the inside elements first; the inside results are the same."""
    num_bins = unnormalized_widths.shape[-1]
    if min_bin_width * num_bins > 1.0 or min_bin_height * num_bins > 1.0:
        raise ValueError(f"duration_predictor_flow_bins={num_bins} is too many bins for a minimum bin size of 1e-3.")
    inside = (inputs >= -tail_bound) & (inputs <= tail_bound)
    values = inputs.clamp(-tail_bound, tail_bound)

    # The tails are linear: derivative 1 at both ends.
    end_derivative = math.log(math.exp(1 - min_derivative) - 1)
    unnormalized_derivatives = F.pad(unnormalized_derivatives, (1, 1), value=end_derivative)
    derivatives = min_derivative + F.softplus(unnormalized_derivatives)
    cumwidths, widths = _bin_edges(unnormalized_widths, min_bin_width, tail_bound)
    cumheights, heights = _bin_edges(unnormalized_heights, min_bin_height, tail_bound)

    # The inverse looks the input up among the output (height) edges.
    search_edges = cumheights.clone()
    search_edges[..., -1] += 1e-6
    bin_idx = (torch.sum(values[..., None] >= search_edges, dim=-1) - 1)[..., None]

    def pick(table: torch.Tensor) -> torch.Tensor:
        return table.gather(-1, bin_idx)[..., 0]

    input_cumwidths, input_bin_widths = pick(cumwidths), pick(widths)
    input_cumheights, input_heights = pick(cumheights), pick(heights)
    input_delta = pick(heights / widths)
    input_derivatives, input_derivatives_plus_one = pick(derivatives), pick(derivatives[..., 1:])

    # Solve the bin's quadratic for its position theta in [0, 1].
    slope_sum = input_derivatives + input_derivatives_plus_one - 2 * input_delta
    offset = values - input_cumheights
    offset_slope = offset * slope_sum
    a = input_heights * (input_delta - input_derivatives) + offset_slope
    b = input_heights * input_derivatives - offset_slope
    c = -input_delta * offset
    root = (2 * c) / (-b - torch.sqrt(b.pow(2) - 4 * a * c))
    outputs = root * input_bin_widths + input_cumwidths
    return torch.where(inside, outputs, inputs)


class VitsConvFlow(nn.Module):
    def __init__(self, config: Any) -> None:
        super().__init__()
        self.filter_channels = config.hidden_size
        self.half_channels = config.depth_separable_channels // 2
        self.num_bins = config.duration_predictor_flow_bins
        self.tail_bound = config.duration_predictor_tail_bound
        self.conv_pre = nn.Conv1d(self.half_channels, self.filter_channels, 1)
        self.conv_dds = VitsDilatedDepthSeparableConv(config)
        self.conv_proj = nn.Conv1d(self.filter_channels, self.half_channels * (self.num_bins * 3 - 1), 1)

    def inverse(self, inputs: torch.Tensor, padding_mask: torch.Tensor, global_conditioning: torch.Tensor | None):
        first_half, second_half = inputs.split(self.half_channels, dim=1)
        hidden_states = self.conv_pre(first_half)
        hidden_states = self.conv_dds(hidden_states, padding_mask, global_conditioning)
        hidden_states = self.conv_proj(hidden_states) * padding_mask
        batch_size, channels, length = first_half.shape
        # (batch, channels, bins..., time) -> (batch, channels, time, bins...)
        hidden_states = hidden_states.reshape(batch_size, channels, -1, length).permute(0, 1, 3, 2)
        scale = math.sqrt(self.filter_channels)
        bins = self.num_bins
        second_half = inverse_rational_quadratic_spline(
            second_half,
            hidden_states[..., :bins] / scale,
            hidden_states[..., bins : 2 * bins] / scale,
            hidden_states[..., 2 * bins :],
            tail_bound=self.tail_bound,
        )
        return torch.cat([first_half, second_half], dim=1) * padding_mask


class VitsElementwiseAffine(nn.Module):
    def __init__(self, config: Any) -> None:
        super().__init__()
        self.channels = config.depth_separable_channels
        self.translate = nn.Parameter(torch.zeros(self.channels, 1))
        self.log_scale = nn.Parameter(torch.zeros(self.channels, 1))

    def inverse(self, inputs: torch.Tensor, padding_mask: torch.Tensor, global_conditioning: torch.Tensor | None):
        return (inputs - self.translate) * torch.exp(-self.log_scale) * padding_mask


# --- HiFi-GAN vocoder ------------------------------------------------------------------------------


def _same_padding(kernel_size: int, dilation: int = 1) -> int:
    return (kernel_size * dilation - dilation) // 2


class HifiGanResidualBlock(nn.Module):
    def __init__(self, channels: int, kernel_size: int = 3, dilation: Iterable[int] = (1, 3, 5), leaky_relu_slope: float = 0.1):
        super().__init__()
        self.leaky_relu_slope = leaky_relu_slope
        dilation = list(dilation)
        self.convs1 = nn.ModuleList(
            nn.Conv1d(channels, channels, kernel_size, dilation=d, padding=_same_padding(kernel_size, d)) for d in dilation
        )
        self.convs2 = nn.ModuleList(
            nn.Conv1d(channels, channels, kernel_size, padding=_same_padding(kernel_size)) for _ in dilation
        )

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        slope = self.leaky_relu_slope
        for conv1, conv2 in zip(self.convs1, self.convs2):
            residual = hidden_states
            hidden_states = conv2(F.leaky_relu(conv1(F.leaky_relu(hidden_states, slope)), slope))
            hidden_states = hidden_states + residual
        return hidden_states


class VitsHifiGan(nn.Module):
    """Spectrogram-like latents (batch, flow_size, frames) -> waveform (batch, 1, frames * prod(upsample_rates))."""

    def __init__(self, config: Any) -> None:
        super().__init__()
        self.config = config
        self.num_kernels = len(config.resblock_kernel_sizes)
        self.num_upsamples = len(config.upsample_rates)
        initial = config.upsample_initial_channel
        self.conv_pre = nn.Conv1d(config.flow_size, initial, kernel_size=7, stride=1, padding=3)
        self.upsampler = nn.ModuleList(
            nn.ConvTranspose1d(initial // 2**i, initial // 2 ** (i + 1), kernel_size=k, stride=rate, padding=(k - rate) // 2)
            for i, (rate, k) in enumerate(zip(config.upsample_rates, config.upsample_kernel_sizes))
        )
        self.resblocks = nn.ModuleList()
        channels = initial
        for i in range(self.num_upsamples):
            channels = initial // 2 ** (i + 1)
            for kernel_size, dilation in zip(config.resblock_kernel_sizes, config.resblock_dilation_sizes):
                self.resblocks.append(HifiGanResidualBlock(channels, kernel_size, dilation, config.leaky_relu_slope))
        self.conv_post = nn.Conv1d(channels, 1, kernel_size=7, stride=1, padding=3, bias=False)
        if config.speaker_embedding_size != 0:
            self.cond = nn.Conv1d(config.speaker_embedding_size, initial, 1)

    def forward(self, spectrogram: torch.Tensor, global_conditioning: torch.Tensor | None = None) -> torch.Tensor:
        hidden_states = self.conv_pre(spectrogram)
        if global_conditioning is not None:
            hidden_states = hidden_states + self.cond(global_conditioning)
        slope = self.config.leaky_relu_slope
        for i in range(self.num_upsamples):
            hidden_states = self.upsampler[i](F.leaky_relu(hidden_states, slope))
            blocks = self.resblocks[i * self.num_kernels : (i + 1) * self.num_kernels]
            summed = blocks[0](hidden_states)
            for block in blocks[1:]:
                summed = summed + block(hidden_states)
            hidden_states = summed / self.num_kernels
        # The last activation uses torch's default slope (0.01), as the original VITS does.
        return torch.tanh(self.conv_post(F.leaky_relu(hidden_states)))


# --- posterior encoder (training only; its weights are in every checkpoint) -------------------------


class VitsPosteriorEncoder(nn.Module):
    """Linear spectrogram -> latents. Used to train VITS (and for voice conversion), never to synthesise speech."""

    def __init__(self, config: Any) -> None:
        super().__init__()
        self.out_channels = config.flow_size
        self.conv_pre = nn.Conv1d(config.spectrogram_bins, config.hidden_size, 1)
        self.wavenet = VitsWaveNet(config, num_layers=config.posterior_encoder_num_wavenet_layers)
        self.conv_proj = nn.Conv1d(config.hidden_size, self.out_channels * 2, 1)

    def forward(self, inputs: torch.Tensor, padding_mask: torch.Tensor, global_conditioning: torch.Tensor | None = None):
        inputs = self.conv_pre(inputs) * padding_mask
        inputs = self.wavenet(inputs, padding_mask, global_conditioning)
        mean, log_stddev = torch.split(self.conv_proj(inputs) * padding_mask, self.out_channels, dim=1)
        sampled = (mean + torch.randn_like(mean) * torch.exp(log_stddev)) * padding_mask
        return sampled, mean, log_stddev
