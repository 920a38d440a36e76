"""hugkit: fast, offline-first inference with the Hugging Face programming model.

``import hugkit`` is nearly free: every name below is imported on first use (PEP 562), and torch is only
imported when a model is actually built.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

# public name -> module that defines it
_EXPORTS = {
    "pipeline": "hugkit.pipelines",
    "Pipeline": "hugkit.pipelines.base",
    "SUPPORTED_TASKS": "hugkit.pipelines",
    "AutoConfig": "hugkit.auto",
    "AutoModel": "hugkit.auto",
    "AutoModelForSequenceClassification": "hugkit.auto",
    "AutoModelForTokenClassification": "hugkit.auto",
    "AutoModelForQuestionAnswering": "hugkit.auto",
    "AutoModelForMaskedLM": "hugkit.auto",
    "AutoModelForSeq2SeqLM": "hugkit.auto",
    "AutoModelForTextToWaveform": "hugkit.auto",
    "AutoModelForSpeechSeq2Seq": "hugkit.auto",
    "VitsConfig": "hugkit.models.vits",
    "VitsModel": "hugkit.models.vits",
    "VitsTokenizer": "hugkit.tokenization.vits",
    "TextToAudioPipeline": "hugkit.pipelines.text_to_speech",
    "AutoTokenizer": "hugkit.tokenization",
    "PreTrainedTokenizerFast": "hugkit.tokenization",
    "BatchEncoding": "hugkit.tokenization",
    "PretrainedConfig": "hugkit.config",
    "PreTrainedModel": "hugkit.modeling_utils",
    "CheckpointNotFoundError": "hugkit.hub",
    "BertConfig": "hugkit.models.bert",
    "BertModel": "hugkit.models.bert",
    "BertForSequenceClassification": "hugkit.models.bert",
    "BertForTokenClassification": "hugkit.models.bert",
    "BertForQuestionAnswering": "hugkit.models.bert",
    "BertForMaskedLM": "hugkit.models.bert",
    "DistilBertConfig": "hugkit.models.distilbert",
    "DistilBertModel": "hugkit.models.distilbert",
    "DistilBertForSequenceClassification": "hugkit.models.distilbert",
    "DistilBertForTokenClassification": "hugkit.models.distilbert",
    "DistilBertForQuestionAnswering": "hugkit.models.distilbert",
    "DistilBertForMaskedLM": "hugkit.models.distilbert",
    "RobertaConfig": "hugkit.models.roberta",
    "RobertaModel": "hugkit.models.roberta",
    "RobertaForSequenceClassification": "hugkit.models.roberta",
    "RobertaForTokenClassification": "hugkit.models.roberta",
    "RobertaForQuestionAnswering": "hugkit.models.roberta",
    "RobertaForMaskedLM": "hugkit.models.roberta",
    "XLMRobertaConfig": "hugkit.models.xlm_roberta",
    "XLMRobertaModel": "hugkit.models.xlm_roberta",
    "XLMRobertaForSequenceClassification": "hugkit.models.xlm_roberta",
    "XLMRobertaForTokenClassification": "hugkit.models.xlm_roberta",
    "XLMRobertaForQuestionAnswering": "hugkit.models.xlm_roberta",
    "XLMRobertaForMaskedLM": "hugkit.models.xlm_roberta",
    "AutoModelForCausalLM": "hugkit.auto",
    "GenerationConfig": "hugkit.generation",
    "generate_tokens": "hugkit.generation",
    "LogitsProcessor": "hugkit.generation.logits",
    "LogitsProcessorList": "hugkit.generation.logits",
    "StoppingCriteria": "hugkit.generation.stopping",
    "StoppingCriteriaList": "hugkit.generation.stopping",
    "MaxLengthCriteria": "hugkit.generation.stopping",
    "MaxTimeCriteria": "hugkit.generation.stopping",
    "GenerateDecoderOnlyOutput": "hugkit.generation.outputs",
    "GenerateEncoderDecoderOutput": "hugkit.generation.outputs",
    "GenerateBeamDecoderOnlyOutput": "hugkit.generation.outputs",
    "GenerateBeamEncoderDecoderOutput": "hugkit.generation.outputs",
    "EncoderDecoderCache": "hugkit.kv_cache",
    "set_seed": "hugkit.seed",
    "logging": "hugkit.logging",  # the module itself (transformers.logging)
    "stream": "hugkit.generation.streaming",
    "astream": "hugkit.generation.streaming",
    "StreamResult": "hugkit.generation.streaming",
    "TextStreamer": "hugkit.generation.streaming",
    "TextIteratorStreamer": "hugkit.generation.streaming",
    "TextGenerationPipeline": "hugkit.pipelines.text_generation",
    "StaticCache": "hugkit.kv_cache",
    "DynamicCache": "hugkit.kv_cache",
    "drop_layers_": "hugkit.surgery",
    "prune_heads_": "hugkit.surgery",
    "prune_ffn_": "hugkit.surgery",
    "GPT2Config": "hugkit.models.gpt2",
    "GPT2Model": "hugkit.models.gpt2",
    "GPT2LMHeadModel": "hugkit.models.gpt2",
    "LlamaConfig": "hugkit.models.llama",
    "LlamaModel": "hugkit.models.llama",
    "LlamaForCausalLM": "hugkit.models.llama",
    "MistralConfig": "hugkit.models.mistral",
    "MistralModel": "hugkit.models.mistral",
    "MistralForCausalLM": "hugkit.models.mistral",
    "Qwen2Config": "hugkit.models.qwen2",
    "Qwen2Model": "hugkit.models.qwen2",
    "Qwen2ForCausalLM": "hugkit.models.qwen2",
    "Qwen3Config": "hugkit.models.qwen3",
    "Qwen3Model": "hugkit.models.qwen3",
    "Qwen3ForCausalLM": "hugkit.models.qwen3",
    "quantize_": "hugkit.quantization",
    "set_activations_": "hugkit.quantization",
    "QuantizationConfig": "hugkit.quantization",
    "Int8WeightOnly": "hugkit.quantization",
    "Int4WeightOnly": "hugkit.quantization",
    "DynamicInt8": "hugkit.quantization",
    "GGUFQ8_0": "hugkit.quantization",
    "GGUFQ4_0": "hugkit.quantization",
    "GGUFQ4_1": "hugkit.quantization",
    "CLIPConfig": "hugkit.models.clip",
    "CLIPTextConfig": "hugkit.models.clip",
    "CLIPVisionConfig": "hugkit.models.clip",
    "CLIPTextModel": "hugkit.models.clip",
    "CLIPTextModelWithProjection": "hugkit.models.clip",
    "CLIPVisionModel": "hugkit.models.clip",
    "CLIPVisionModelWithProjection": "hugkit.models.clip",
    "CLIPModel": "hugkit.models.clip",
    "CLIPImageProcessor": "hugkit.image_processing",
    "CLIPTokenizer": "hugkit.tokenization",
    "CLIPTokenizerFast": "hugkit.tokenization",
    "WhisperFeatureExtractor": "hugkit.audio.feature_extraction_whisper",
    "WhisperConfig": "hugkit.models.whisper",
    "WhisperModel": "hugkit.models.whisper",
    "WhisperForConditionalGeneration": "hugkit.models.whisper",
    "load_audio": "hugkit.audio.io",
    # image generation (diffusers' names)
    "DiffusionPipeline": "hugkit.diffusion.pipeline_utils",
    "StableDiffusionPipeline": "hugkit.diffusion.pipelines.stable_diffusion",
    "StableDiffusionImg2ImgPipeline": "hugkit.diffusion.pipelines.stable_diffusion_img2img",
    "StableDiffusionInpaintPipeline": "hugkit.diffusion.pipelines.stable_diffusion_inpaint",
    "StableDiffusionXLPipeline": "hugkit.diffusion.pipelines.stable_diffusion_xl",
    "StableDiffusionXLImg2ImgPipeline": "hugkit.diffusion.pipelines.stable_diffusion_xl_img2img",
    "AutoPipelineForText2Image": "hugkit.diffusion.pipelines.auto_pipeline",
    "AutoPipelineForImage2Image": "hugkit.diffusion.pipelines.auto_pipeline",
    "AutoPipelineForInpainting": "hugkit.diffusion.pipelines.auto_pipeline",
    "StableDiffusionPipelineOutput": "hugkit.diffusion.denoising",
    "DenoisingStep": "hugkit.diffusion.denoising",
    "UNet2DConditionModel": "hugkit.diffusion.models.unet_2d_condition",
    "AutoencoderKL": "hugkit.diffusion.models.autoencoder_kl",
    "StableDiffusionSafetyChecker": "hugkit.diffusion.safety_checker",
    "VaeImageProcessor": "hugkit.diffusion.image_processor",
    "DDPMScheduler": "hugkit.diffusion.schedulers.ddpm",
    "DDIMScheduler": "hugkit.diffusion.schedulers.ddim",
    "PNDMScheduler": "hugkit.diffusion.schedulers.pndm",
    "LMSDiscreteScheduler": "hugkit.diffusion.schedulers.lms_discrete",
    "EulerDiscreteScheduler": "hugkit.diffusion.schedulers.euler_discrete",
    "EulerAncestralDiscreteScheduler": "hugkit.diffusion.schedulers.euler_ancestral_discrete",
    "DPMSolverMultistepScheduler": "hugkit.diffusion.schedulers.dpmsolver_multistep",
    "UniPCMultistepScheduler": "hugkit.diffusion.schedulers.unipc_multistep",
    "LCMScheduler": "hugkit.diffusion.schedulers.lcm",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module_name = _EXPORTS.get(name)
    if module_name is None:
        raise AttributeError(f"module 'hugkit' has no attribute {name!r}")
    module = importlib.import_module(module_name)
    value = module if module_name == f"{__name__}.{name}" else getattr(module, name)  # a submodule export
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))
