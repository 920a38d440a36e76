"""resize_token_embeddings, with transformers v5's semantics (``PreTrainedModel.resize_token_embeddings`` calls this).

- ``pad_to_multiple_of`` rounds the new size up; ``new_num_tokens=None`` with it pads the current size.
- Old rows are kept; rows past the new size are cut; new rows are initialised as v5 does: with ``mean_resizing``
  (the default) from the old rows' mean (v5 samples N(mean, 1e-9 * covariance), which is the mean to within about
  3e-5 standard deviations; hugkit takes the mean itself, so the result is reproducible), else from
  N(0, initializer_range). A language-model head is resized with the embeddings (its own rows' mean when untied).
  A head bias's new entries get the old bias mean when the head is untied, and zero when it is tied to the
  embeddings: v5 then sees the head's weight already resized and skips its initialisation (measured on BERT and
  DistilBERT masked-LM heads). Tied parameters stay tied (every reference to a resized parameter,
  e.g. BERT's ``cls.predictions.bias`` shared with ``decoder.bias``, is swapped).
- Every embedding module reading the resized weight follows (BART's encoder and decoder ``embed_tokens`` share
  ``shared.weight``): its ``num_embeddings`` is updated and a ``padding_idx`` past the new size is cleared.
- Vocabulary-sized buffers of the model (BART's ``final_logits_bias``, shape ``[1, vocab]``) keep their old entries
  and get zeros for new tokens, as transformers' ``BartForConditionalGeneration.resize_token_embeddings`` does.
- ``config.vocab_size`` is updated.
"""

from __future__ import annotations

from numbers import Integral

import torch
from torch import nn

# Buffers on the model (not on a submodule) whose last dimension is the vocabulary, resized with the embeddings.
VOCAB_BUFFERS = ("final_logits_bias",)


def resize_token_embeddings(
    model: nn.Module,
    new_num_tokens: int | None = None,
    pad_to_multiple_of: int | None = None,
    mean_resizing: bool = True,
) -> nn.Embedding:
    embeddings = model.get_input_embeddings()
    old_weight = embeddings.weight
    if pad_to_multiple_of is not None:
        if isinstance(pad_to_multiple_of, bool) or not isinstance(pad_to_multiple_of, Integral) or pad_to_multiple_of < 1:
            raise ValueError(f"pad_to_multiple_of should be a positive int, e.g. 64; found {pad_to_multiple_of!r}.")
        if new_num_tokens is None:
            new_num_tokens = old_weight.shape[0]
        new_num_tokens = -(-new_num_tokens // pad_to_multiple_of) * pad_to_multiple_of
    if new_num_tokens is None:
        return embeddings
    if isinstance(new_num_tokens, bool) or not isinstance(new_num_tokens, Integral) or new_num_tokens < 1:
        raise ValueError(f"new_num_tokens should be a positive int (the new vocabulary size); found {new_num_tokens!r}.")
    new_num_tokens = int(new_num_tokens)
    if old_weight.is_meta or not old_weight.is_floating_point():
        raise TypeError("resize_token_embeddings needs loaded float embeddings; resize before quantizing the model.")

    std = getattr(model.config, "initializer_range", 0.02)
    output = _output_embeddings(model)
    resized: dict[int, nn.Parameter] = {id(old_weight): _rows(old_weight, new_num_tokens, mean_resizing, std)}
    if output is not None:
        tied = id(output.weight) in resized
        if not tied:
            resized[id(output.weight)] = _rows(output.weight, new_num_tokens, mean_resizing, std)
        if getattr(output, "bias", None) is not None:
            resized[id(output.bias)] = _bias(output.bias, new_num_tokens, mean_resizing and not tied)
    for module in model.modules():  # swap every reference, so whatever was tied stays tied
        for name, param in module._parameters.items():
            if param is not None and id(param) in resized:
                module._parameters[name] = resized[id(param)]

    for name in VOCAB_BUFFERS:
        buffer = model._buffers.get(name)
        if buffer is not None:
            model._buffers[name] = _bias(buffer, new_num_tokens, mean_resizing=False)
    if isinstance(output, nn.Linear):
        output.out_features = new_num_tokens
    model.config.vocab_size = new_num_tokens
    model.tie_weights()
    new_weight = embeddings.weight
    for module in model.modules():
        if isinstance(module, nn.Embedding) and module.weight is new_weight:
            module.num_embeddings = new_num_tokens
            if module.padding_idx is not None and module.padding_idx >= new_num_tokens:
                module.padding_idx = None
    return embeddings


def _output_embeddings(model: nn.Module) -> nn.Module | None:
    getter = getattr(model, "get_output_embeddings", None)
    if getter is not None:
        return getter()
    head = getattr(model, "lm_head", None)
    return head if isinstance(head, nn.Linear) else None


def _rows(weight: torch.Tensor, count: int, mean_resizing: bool, std: float) -> nn.Parameter:
    old_count = weight.shape[0]
    with torch.no_grad():
        if count <= old_count:
            new = weight[:count].clone()
        else:
            added = count - old_count
            if mean_resizing:
                fresh = weight.float().mean(dim=0).expand(added, -1).to(weight.dtype)
            else:
                fresh = torch.empty(added, weight.shape[1], dtype=weight.dtype, device=weight.device).normal_(0.0, std)
            new = torch.cat([weight, fresh])
    return nn.Parameter(new, requires_grad=weight.requires_grad)


def _bias(bias: torch.Tensor, count: int, mean_resizing: bool) -> torch.Tensor:
    """Entries along the last dimension: cut, or extended with the old mean (or zeros). A parameter stays one."""
    old_count = bias.shape[-1]
    with torch.no_grad():
        if count <= old_count:
            new = bias[..., :count].clone()
        else:
            fill = bias.float().mean() if mean_resizing else torch.zeros((), device=bias.device)
            fresh = fill.to(bias.dtype).expand(*bias.shape[:-1], count - old_count)
            new = torch.cat([bias, fresh], dim=-1)
    if isinstance(bias, nn.Parameter):
        return nn.Parameter(new, requires_grad=bias.requires_grad)
    return new
