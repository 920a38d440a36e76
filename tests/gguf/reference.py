"""transformers' GGUF loading (dequantized to fp32) as the reference, without its accelerate requirement:
the same tensor reading, renaming and un-permuting (load_gguf_checkpoint) into a model built from the config."""

from pathlib import Path

import torch


def transformers_gguf_model(path: Path, config=None):
    import transformers
    from transformers.modeling_gguf_pytorch_utils import load_gguf_checkpoint

    if config is None:
        config = transformers.AutoConfig.from_pretrained(path.parent, gguf_file=path.name)
    model = transformers.AutoModelForCausalLM.from_config(config)
    tensors = load_gguf_checkpoint(str(path), return_tensors=True, model_to_load=model)["tensors"]
    missing, unexpected = model.load_state_dict({k: torch.as_tensor(v) for k, v in tensors.items()}, strict=False)
    assert not unexpected and set(missing) <= {"lm_head.weight"}, (missing, unexpected)
    if missing:
        model.tie_weights()
    return model.eval()
