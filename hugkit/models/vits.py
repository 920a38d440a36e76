"""VITS / MMS-TTS text-to-speech, with transformers' config fields and module names so checkpoints load as they are.

Reads top to bottom: the config, the outputs, the text encoder (a transformer with windowed relative-position
attention), the duration predictors (stochastic: a spline flow sampled in reverse; or deterministic), then
VitsModel, which expands the text prior by the predicted durations, samples latents, runs the flow in reverse
and vocodes them with HiFi-GAN. The flows, WaveNet and HiFi-GAN live in vits_modules.py.

Randomness matches transformers draw for draw: under the same ``torch.manual_seed`` the stochastic duration
predictor draws ``torch.randn(batch, 2, tokens)`` (on the CPU generator) and then the prior draws
``torch.randn_like`` of the expanded means, so the same seed gives the same waveform.
``speaking_rate``, ``noise_scale`` and ``noise_scale_duration`` are read from the config at each call; setting
them on the model (``model.noise_scale = 0.5``, as with transformers) sets the config field.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Optional

import torch
import torch.nn.functional as F
from torch import nn

from ..config import PretrainedConfig
from ..layers import check_inputs, get_activation
from ..layers import padding_mask as additive_padding_mask
from ..loading import iter_checkpoint
from ..modeling_utils import PreTrainedModel
from ..outputs import ModelOutput, Tensor
from ..task_heads import resolve_flags
from .vits_modules import (
    VitsConvFlow,
    VitsDilatedDepthSeparableConv,
    VitsElementwiseAffine,
    VitsHifiGan,
    VitsPosteriorEncoder,
    VitsResidualCouplingBlock,
    fold_weight_norm_tensors,
)

# --- config ----------------------------------------------------------------------------------------


class VitsConfig(PretrainedConfig):
    model_type = "vits"
    defaults = {
        "vocab_size": 38,
        "hidden_size": 192,
        "num_hidden_layers": 6,
        "num_attention_heads": 2,
        "window_size": 4,
        "use_bias": True,
        "ffn_dim": 768,
        "layerdrop": 0.1,
        "ffn_kernel_size": 3,
        "flow_size": 192,
        "spectrogram_bins": 513,
        "hidden_act": "relu",
        "hidden_dropout": 0.1,
        "attention_dropout": 0.1,
        "activation_dropout": 0.1,
        "initializer_range": 0.02,
        "layer_norm_eps": 1e-5,
        "use_stochastic_duration_prediction": True,
        "num_speakers": 1,
        "speaker_embedding_size": 0,
        "upsample_initial_channel": 512,
        "upsample_rates": [8, 8, 2, 2],
        "upsample_kernel_sizes": [16, 16, 4, 4],
        "resblock_kernel_sizes": [3, 7, 11],
        "resblock_dilation_sizes": [[1, 3, 5], [1, 3, 5], [1, 3, 5]],
        "leaky_relu_slope": 0.1,
        "depth_separable_channels": 2,
        "depth_separable_num_layers": 3,
        "duration_predictor_flow_bins": 10,
        "duration_predictor_tail_bound": 5.0,
        "duration_predictor_kernel_size": 3,
        "duration_predictor_dropout": 0.5,
        "duration_predictor_num_flows": 4,
        "duration_predictor_filter_channels": 256,
        "prior_encoder_num_flows": 4,
        "prior_encoder_num_wavenet_layers": 4,
        "posterior_encoder_num_wavenet_layers": 16,
        "wavenet_kernel_size": 5,
        "wavenet_dilation_rate": 1,
        "wavenet_dropout": 0.0,
        "speaking_rate": 1.0,
        "noise_scale": 0.667,
        "noise_scale_duration": 0.8,
        "sampling_rate": 16_000,
    }

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if len(self.upsample_kernel_sizes) != len(self.upsample_rates):
            raise ValueError(
                f"upsample_kernel_sizes ({len(self.upsample_kernel_sizes)} values) must have one kernel size per "
                f"upsample rate (upsample_rates has {len(self.upsample_rates)}). Give both lists the same length."
            )
        if len(self.resblock_kernel_sizes) != len(self.resblock_dilation_sizes):
            raise ValueError(
                f"resblock_kernel_sizes ({len(self.resblock_kernel_sizes)} values) and resblock_dilation_sizes "
                f"({len(self.resblock_dilation_sizes)} lists) must have the same length: one dilation list per kernel."
            )
        if self.hidden_size % self.num_attention_heads:
            raise ValueError(
                f"hidden_size ({self.hidden_size}) must be divisible by num_attention_heads ({self.num_attention_heads})."
            )


# --- outputs ---------------------------------------------------------------------------------------


@dataclass
class VitsModelOutput(ModelOutput):
    """waveform (batch, samples), sequence_lengths (batch,) in samples, spectrogram (batch, flow_size, frames)
    (the flow's output that HiFi-GAN vocodes), hidden_states, attentions (of the text encoder)."""

    waveform: Optional[Tensor] = None
    sequence_lengths: Optional[Tensor] = None
    spectrogram: Optional[Tensor] = None
    hidden_states: Optional[tuple] = None
    attentions: Optional[tuple] = None


@dataclass
class VitsTextEncoderOutput(ModelOutput):
    """last_hidden_state, prior_means, prior_log_variances (batch, tokens, flow_size), hidden_states, attentions."""

    last_hidden_state: Optional[Tensor] = None
    prior_means: Optional[Tensor] = None
    prior_log_variances: Optional[Tensor] = None
    hidden_states: Optional[tuple] = None
    attentions: Optional[tuple] = None


# --- text encoder ----------------------------------------------------------------------------------


def _relative_positions(length: int, window: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """For query i and key j: the relative-embedding row (j - i + window, clamped) and whether |j - i| <= window."""
    positions = torch.arange(length, device=device)
    offsets = positions[None, :] - positions[:, None]
    return offsets.clamp(-window, window) + window, offsets.abs() <= window


class VitsAttention(nn.Module):
    """Multi-head self-attention with relative position embeddings for offsets within +-window_size
    (Shaw et al.): one learned key and value vector per offset, shared by all heads; farther offsets get none."""

    def __init__(self, config: VitsConfig) -> None:
        super().__init__()
        self.embed_dim = config.hidden_size
        self.num_heads = config.num_attention_heads
        self.head_dim = self.embed_dim // self.num_heads
        self.scaling = self.head_dim**-0.5
        self.dropout = config.attention_dropout
        self.window_size = config.window_size or None
        self.k_proj = nn.Linear(self.embed_dim, self.embed_dim, bias=config.use_bias)
        self.v_proj = nn.Linear(self.embed_dim, self.embed_dim, bias=config.use_bias)
        self.q_proj = nn.Linear(self.embed_dim, self.embed_dim, bias=config.use_bias)
        self.out_proj = nn.Linear(self.embed_dim, self.embed_dim, bias=config.use_bias)
        if self.window_size:
            shape = (1, 2 * self.window_size + 1, self.head_dim)
            self.emb_rel_k = nn.Parameter(nn.init.normal_(torch.empty(shape), std=self.scaling))
            self.emb_rel_v = nn.Parameter(nn.init.normal_(torch.empty(shape), std=self.scaling))

    def forward(self, hidden_states: torch.Tensor, attention_mask: torch.Tensor | None = None, output_attentions: bool = False):
        batch, length, _ = hidden_states.shape
        heads = batch * self.num_heads

        def split_heads(states: torch.Tensor) -> torch.Tensor:
            return states.view(batch, length, self.num_heads, self.head_dim).transpose(1, 2).reshape(heads, length, -1)

        query = split_heads(self.q_proj(hidden_states) * self.scaling)
        key = split_heads(self.k_proj(hidden_states))
        value = split_heads(self.v_proj(hidden_states))
        scores = torch.bmm(query, key.transpose(1, 2))
        if self.window_size:
            rows, near = _relative_positions(length, self.window_size, hidden_states.device)
            rows = rows.expand(heads, length, length)
            relative = torch.matmul(query, self.emb_rel_k[0].transpose(0, 1))  # (heads, query, offset)
            scores = scores + relative.gather(-1, rows).masked_fill(~near, 0.0)
        if attention_mask is not None:
            scores = (scores.view(batch, self.num_heads, length, length) + attention_mask).view(heads, length, length)
        probs = F.dropout(torch.softmax(scores, dim=-1), p=self.dropout, training=self.training)
        output = torch.bmm(probs, value)
        if self.window_size:
            # probs by offset: row i, offset r -> key i + r - window (zero where that key does not exist)
            keys = torch.arange(length, device=probs.device)[:, None] + torch.arange(2 * self.window_size + 1, device=probs.device)
            keys = keys - self.window_size
            exists = (keys >= 0) & (keys < length)
            by_offset = probs.gather(-1, keys.clamp(0, length - 1).expand(heads, length, -1)).masked_fill(~exists, 0.0)
            output = output + torch.matmul(by_offset, self.emb_rel_v[0])
        output = output.view(batch, self.num_heads, length, self.head_dim).transpose(1, 2).reshape(batch, length, self.embed_dim)
        weights = probs.view(batch, self.num_heads, length, length) if output_attentions else None
        return self.out_proj(output), weights


class VitsFeedForward(nn.Module):
    """Two 1-D convolutions over time ("same" padding, more on the right for even kernels)."""

    def __init__(self, config: VitsConfig) -> None:
        super().__init__()
        self.conv_1 = nn.Conv1d(config.hidden_size, config.ffn_dim, config.ffn_kernel_size)
        self.conv_2 = nn.Conv1d(config.ffn_dim, config.hidden_size, config.ffn_kernel_size)
        self.dropout = nn.Dropout(config.activation_dropout)
        self.act_fn = get_activation(config.hidden_act)
        kernel = config.ffn_kernel_size
        self.padding = ((kernel - 1) // 2, kernel // 2) if kernel > 1 else None

    def _pad(self, states: torch.Tensor) -> torch.Tensor:
        return F.pad(states, self.padding) if self.padding is not None else states

    def forward(self, hidden_states: torch.Tensor, padding_mask: torch.Tensor) -> torch.Tensor:
        hidden_states = hidden_states.permute(0, 2, 1)
        mask = padding_mask.permute(0, 2, 1)
        hidden_states = self.dropout(self.act_fn(self.conv_1(self._pad(hidden_states * mask))))
        hidden_states = self.conv_2(self._pad(hidden_states * mask)) * mask
        return hidden_states.permute(0, 2, 1)


class VitsEncoderLayer(nn.Module):
    def __init__(self, config: VitsConfig) -> None:
        super().__init__()
        self.attention = VitsAttention(config)
        self.dropout = nn.Dropout(config.hidden_dropout)
        self.layer_norm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.feed_forward = VitsFeedForward(config)
        self.final_layer_norm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)

    def forward(self, hidden_states, padding_mask, attention_mask=None, output_attentions: bool = False):
        attended, weights = self.attention(hidden_states, attention_mask, output_attentions)
        hidden_states = self.layer_norm(hidden_states + self.dropout(attended))
        fed = self.feed_forward(hidden_states, padding_mask)
        return self.final_layer_norm(hidden_states + self.dropout(fed)), weights


class VitsEncoder(nn.Module):
    def __init__(self, config: VitsConfig) -> None:
        super().__init__()
        self.config = config
        self.layers = nn.ModuleList(VitsEncoderLayer(config) for _ in range(config.num_hidden_layers))

    def forward(self, hidden_states, padding_mask, attention_mask=None, output_attentions=False, output_hidden_states=False):
        """hidden_states (batch, tokens, hidden); padding_mask (batch, tokens, 1); attention_mask (batch, tokens)."""
        additive_mask = additive_padding_mask(attention_mask, hidden_states.dtype)
        all_states = [] if output_hidden_states else None
        all_weights = [] if output_attentions else None
        hidden_states = hidden_states * padding_mask
        for layer in self.layers:  # (layerdrop only skips layers in training)
            if all_states is not None:
                all_states.append(hidden_states)
            hidden_states, weights = layer(hidden_states, padding_mask, additive_mask, output_attentions)
            if all_weights is not None:
                all_weights.append(weights)
        hidden_states = hidden_states * padding_mask
        if all_states is not None:
            all_states.append(hidden_states)
        return hidden_states, (tuple(all_states) if all_states is not None else None), (
            tuple(all_weights) if all_weights is not None else None
        )


class VitsTextEncoder(nn.Module):
    def __init__(self, config: VitsConfig) -> None:
        super().__init__()
        self.config = config
        self.embed_tokens = nn.Embedding(config.vocab_size, config.hidden_size, config.pad_token_id)
        self.encoder = VitsEncoder(config)
        self.project = nn.Conv1d(config.hidden_size, config.flow_size * 2, kernel_size=1)

    def forward(self, input_ids, padding_mask, attention_mask=None, output_attentions=False, output_hidden_states=False,
                return_dict: bool = True):
        hidden_states = self.embed_tokens(input_ids) * math.sqrt(self.config.hidden_size)
        last, states, weights = self.encoder(hidden_states, padding_mask, attention_mask, output_attentions, output_hidden_states)
        stats = self.project(last.transpose(1, 2)).transpose(1, 2) * padding_mask
        means, log_variances = torch.split(stats, self.config.flow_size, dim=2)
        output = VitsTextEncoderOutput(last, means, log_variances, states, weights)
        return output if return_dict else output.to_tuple()


# --- duration predictors ---------------------------------------------------------------------------


class VitsStochasticDurationPredictor(nn.Module):
    """Log-durations sampled from a flow conditioned on the text (run in reverse from Gaussian noise).
    The post_* modules and the first ConvFlow are used only in training, but are part of every checkpoint."""

    def __init__(self, config: VitsConfig) -> None:
        super().__init__()
        filter_channels = config.hidden_size
        self.conv_pre = nn.Conv1d(filter_channels, filter_channels, 1)
        self.conv_proj = nn.Conv1d(filter_channels, filter_channels, 1)
        self.conv_dds = VitsDilatedDepthSeparableConv(config, dropout_rate=config.duration_predictor_dropout)
        if config.speaker_embedding_size != 0:
            self.cond = nn.Conv1d(config.speaker_embedding_size, filter_channels, 1)
        self.flows = nn.ModuleList([VitsElementwiseAffine(config)])
        self.flows.extend(VitsConvFlow(config) for _ in range(config.duration_predictor_num_flows))
        self.post_conv_pre = nn.Conv1d(1, filter_channels, 1)
        self.post_conv_proj = nn.Conv1d(filter_channels, filter_channels, 1)
        self.post_conv_dds = VitsDilatedDepthSeparableConv(config, dropout_rate=config.duration_predictor_dropout)
        self.post_flows = nn.ModuleList([VitsElementwiseAffine(config)])
        self.post_flows.extend(VitsConvFlow(config) for _ in range(config.duration_predictor_num_flows))

    def forward(self, inputs, padding_mask, global_conditioning=None, noise_scale: float = 1.0, generator=None):
        inputs = self.conv_pre(inputs.detach())
        if global_conditioning is not None:
            inputs = inputs + self.cond(global_conditioning.detach())
        inputs = self.conv_proj(self.conv_dds(inputs, padding_mask)) * padding_mask
        # Reverse order, without the first ConvFlow (it only matters for training), as the original VITS does.
        flows = [*reversed(self.flows[2:]), self.flows[0]]
        latents = _randn((inputs.size(0), 2, inputs.size(2)), generator).to(device=inputs.device, dtype=inputs.dtype)
        latents = latents * noise_scale
        for flow in flows:
            latents = flow.inverse(torch.flip(latents, [1]), padding_mask, inputs)
        return latents[:, :1]


class VitsDurationPredictor(nn.Module):
    """Deterministic log-durations (use_stochastic_duration_prediction=False): two convolutions and a projection."""

    def __init__(self, config: VitsConfig) -> None:
        super().__init__()
        kernel_size = config.duration_predictor_kernel_size
        filter_channels = config.duration_predictor_filter_channels
        self.dropout = nn.Dropout(config.duration_predictor_dropout)
        self.conv_1 = nn.Conv1d(config.hidden_size, filter_channels, kernel_size, padding=kernel_size // 2)
        self.norm_1 = nn.LayerNorm(filter_channels, eps=config.layer_norm_eps)
        self.conv_2 = nn.Conv1d(filter_channels, filter_channels, kernel_size, padding=kernel_size // 2)
        self.norm_2 = nn.LayerNorm(filter_channels, eps=config.layer_norm_eps)
        self.proj = nn.Conv1d(filter_channels, 1, 1)
        if config.speaker_embedding_size != 0:
            self.cond = nn.Conv1d(config.speaker_embedding_size, config.hidden_size, 1)

    def forward(self, inputs, padding_mask, global_conditioning=None):
        inputs = inputs.detach()
        if global_conditioning is not None:
            inputs = inputs + self.cond(global_conditioning.detach())
        for conv, norm in ((self.conv_1, self.norm_1), (self.conv_2, self.norm_2)):
            inputs = torch.relu(conv(inputs * padding_mask))
            inputs = self.dropout(norm(inputs.transpose(1, -1)).transpose(1, -1))
        return self.proj(inputs * padding_mask) * padding_mask


def _randn(shape: tuple[int, ...], generator: torch.Generator | None) -> torch.Tensor:
    """Standard normal noise from ``generator``, else from torch's global (CPU) generator as transformers draws it."""
    if generator is None:
        return torch.randn(shape)
    return torch.randn(shape, generator=generator, device=generator.device)


# --- the model -------------------------------------------------------------------------------------


class VitsPreTrainedModel(PreTrainedModel):
    config_class = VitsConfig
    base_model_prefix = "vits"
    main_input_name = "input_ids"

    def load_checkpoint(self, files, *, dtype, device, ignore_mismatched_sizes=False, on_weight_loaded=None, tensors=None):
        """Fold each weight-norm pair (``weight_g``/``weight_v`` or ``parametrizations.weight.original0/1``)
        as it is read (vits_modules.fold_weight_norm); otherwise the usual strict load."""
        source = iter_checkpoint(files) if tensors is None else tensors
        super().load_checkpoint(
            files, dtype=dtype, device=device, ignore_mismatched_sizes=ignore_mismatched_sizes,
            on_weight_loaded=on_weight_loaded, tensors=fold_weight_norm_tensors(source),
        )


class VitsModel(VitsPreTrainedModel):
    """The complete VITS model: token ids -> waveform (``model(**tokenizer(text, return_tensors="pt")).waveform``)."""

    def __init__(self, config: VitsConfig) -> None:
        super().__init__(config)
        self.text_encoder = VitsTextEncoder(config)
        self.flow = VitsResidualCouplingBlock(config)
        self.decoder = VitsHifiGan(config)
        if config.use_stochastic_duration_prediction:
            self.duration_predictor = VitsStochasticDurationPredictor(config)
        else:
            self.duration_predictor = VitsDurationPredictor(config)
        if config.num_speakers > 1:
            self.embed_speaker = nn.Embedding(config.num_speakers, config.speaker_embedding_size)
        self.posterior_encoder = VitsPosteriorEncoder(config)  # training only; loaded so checkpoints round-trip

    # The synthesis controls live in the config, so model.noise_scale = x and config.noise_scale = x agree.
    speaking_rate = property(lambda self: self.config.speaking_rate, lambda self, v: setattr(self.config, "speaking_rate", v))
    noise_scale = property(lambda self: self.config.noise_scale, lambda self, v: setattr(self.config, "noise_scale", v))
    noise_scale_duration = property(
        lambda self: self.config.noise_scale_duration, lambda self, v: setattr(self.config, "noise_scale_duration", v)
    )

    def get_input_embeddings(self) -> nn.Module:
        return self.text_encoder.embed_tokens

    def can_generate(self) -> bool:
        return False

    def forward(
        self,
        input_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        speaker_id: Any = None,
        output_attentions: bool | None = None,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
        labels: torch.Tensor | None = None,
        speaking_rate: float | None = None,
        noise_scale: float | None = None,
        noise_scale_duration: float | None = None,
        generator: torch.Generator | None = None,
    ) -> VitsModelOutput | tuple:
        """Synthesise speech. ``speaking_rate``, ``noise_scale`` and ``noise_scale_duration`` override the config
        for this call (the last two, and ``generator``, are hugkit additions). ``speaker_id``: an int, or one per
        row, for multi-speaker checkpoints."""
        if labels is not None:
            raise NotImplementedError("Training VITS is not supported (transformers does not support it either).")
        output_hidden_states, output_attentions, return_dict = resolve_flags(
            self.config, output_hidden_states, output_attentions, return_dict
        )
        check_inputs(input_ids, None, attention_mask, max_length=1 << 62, hidden_size=self.config.hidden_size)
        if input_ids.shape[1] == 0:
            raise ValueError(
                "input_ids is empty (0 tokens): VITS needs at least one character. Check the text is not empty "
                "and that its characters are in the tokenizer's vocabulary."
            )
        mask_dtype = self.text_encoder.embed_tokens.weight.dtype
        if attention_mask is not None:
            input_mask = attention_mask.unsqueeze(-1).to(mask_dtype)
        else:
            input_mask = torch.ones_like(input_ids).unsqueeze(-1).to(mask_dtype)
        speaker_embeddings = self._speaker_embeddings(speaker_id)

        encoded = self.text_encoder(input_ids, input_mask, attention_mask, output_attentions, output_hidden_states)
        hidden_states = encoded.last_hidden_state.transpose(1, 2)
        input_mask = input_mask.transpose(1, 2)  # (batch, 1, tokens)

        if self.config.use_stochastic_duration_prediction:
            scale = self.config.noise_scale_duration if noise_scale_duration is None else noise_scale_duration
            log_duration = self.duration_predictor(hidden_states, input_mask, speaker_embeddings, scale, generator)
        else:
            log_duration = self.duration_predictor(hidden_states, input_mask, speaker_embeddings)

        rate = self.config.speaking_rate if speaking_rate is None else speaking_rate
        if not rate or rate <= 0:
            raise ValueError(f"speaking_rate must be a positive number (1.0 is normal speed), got {rate!r}.")
        duration = torch.ceil(torch.exp(log_duration) * input_mask * (1.0 / rate))
        predicted_lengths = torch.clamp_min(torch.sum(duration.float(), [1, 2]), 1).long()
        prior_means, prior_log_variances, output_mask = _expand_by_duration(
            duration, predicted_lengths, encoded.prior_means, encoded.prior_log_variances
        )

        scale = self.config.noise_scale if noise_scale is None else noise_scale
        if generator is None:
            noise = torch.randn_like(prior_means)
        else:
            noise = torch.randn(prior_means.shape, generator=generator, device=generator.device).to(prior_means)
        prior_latents = prior_means + noise * torch.exp(prior_log_variances) * scale
        latents = self.flow(prior_latents, output_mask, speaker_embeddings, reverse=True)
        spectrogram = latents * output_mask
        waveform = self.decoder(spectrogram, speaker_embeddings).squeeze(1)
        sequence_lengths = predicted_lengths * math.prod(self.config.upsample_rates)

        output = VitsModelOutput(waveform, sequence_lengths, spectrogram, encoded.hidden_states, encoded.attentions)
        return output if return_dict else output.to_tuple()

    def _speaker_embeddings(self, speaker_id: Any) -> torch.Tensor | None:
        """(1 or batch, speaker_embedding_size, 1), or None for single-speaker models / no speaker given."""
        speakers = self.config.num_speakers
        if speaker_id is None:
            return None
        if speakers <= 1:
            if isinstance(speaker_id, int) and speaker_id == 0:
                return None
            raise ValueError(f"speaker_id={speaker_id!r} was given, but this checkpoint has a single speaker. Leave it out.")
        ids = torch.as_tensor(speaker_id, device=self.device).reshape(-1)
        if ids.is_floating_point() or ids.numel() == 0 or bool(((ids < 0) | (ids >= speakers)).any()):
            raise ValueError(f"speaker_id must be an int (or one per row) in the range 0-{speakers - 1}, got {speaker_id!r}.")
        return self.embed_speaker(ids.long()).unsqueeze(-1)


def _expand_by_duration(duration, lengths, means, log_variances):
    """Repeat each token's prior (batch, tokens, flow) for its duration in frames -> (batch, flow, frames),
    zero past each row's length; and the frame mask (batch, 1, frames)."""
    frames = torch.arange(int(lengths.max()), device=duration.device)
    output_mask = (frames[None, :] < lengths[:, None]).unsqueeze(1).to(duration.dtype)
    ends = torch.cumsum(duration[:, 0].long(), dim=-1).contiguous()  # frame where each token stops (exact ints)
    token = torch.searchsorted(ends, frames.expand(ends.shape[0], -1).contiguous(), right=True)
    keep = ((token < ends.shape[1]) & output_mask[:, 0].bool()).unsqueeze(-1)
    index = token.clamp(max=ends.shape[1] - 1).unsqueeze(-1).expand(-1, -1, means.shape[-1])

    def expand(prior: torch.Tensor) -> torch.Tensor:
        # (batch, frames, flow) then transposed, the layout transformers' matmul gives: randn_like follows it.
        return prior.gather(1, index).masked_fill(~keep, 0.0).transpose(1, 2)

    return expand(means), expand(log_variances), output_mask


__all__ = ["VitsConfig", "VitsModel", "VitsModelOutput", "VitsPreTrainedModel"]
