"""XLM-RoBERTa: RoBERTa's architecture under another name, config class and model_type ("xlm-roberta").

Deliberate aliases: every class is the RoBERTa one (roberta.py) with XLMRobertaConfig; checkpoints use the same
``roberta.*`` / ``lm_head.*`` / ``classifier.*`` names, so nothing else differs.
"""

from __future__ import annotations

from .roberta import (
    RobertaConfig,
    RobertaForMaskedLM,
    RobertaForQuestionAnswering,
    RobertaForSequenceClassification,
    RobertaForTokenClassification,
    RobertaModel,
    RobertaPreTrainedModel,
)


class XLMRobertaConfig(RobertaConfig):
    model_type = "xlm-roberta"
    # transformers' XLMRobertaConfig keeps BERT's vocab_size default (real checkpoints always set it).
    defaults = {**RobertaConfig.defaults, "vocab_size": 30522}


class XLMRobertaPreTrainedModel(RobertaPreTrainedModel):
    config_class = XLMRobertaConfig

    @classmethod
    def base_model_class(cls) -> type["XLMRobertaModel"]:
        return XLMRobertaModel


class XLMRobertaModel(XLMRobertaPreTrainedModel, RobertaModel):
    """Same as roberta.RobertaModel except: XLMRobertaConfig."""


class XLMRobertaForMaskedLM(XLMRobertaPreTrainedModel, RobertaForMaskedLM):
    """Same as roberta.RobertaForMaskedLM except: XLMRobertaConfig."""


class XLMRobertaForSequenceClassification(XLMRobertaPreTrainedModel, RobertaForSequenceClassification):
    """Same as roberta.RobertaForSequenceClassification except: XLMRobertaConfig."""


class XLMRobertaForTokenClassification(XLMRobertaPreTrainedModel, RobertaForTokenClassification):
    """Same as roberta.RobertaForTokenClassification except: XLMRobertaConfig."""


class XLMRobertaForQuestionAnswering(XLMRobertaPreTrainedModel, RobertaForQuestionAnswering):
    """Same as roberta.RobertaForQuestionAnswering except: XLMRobertaConfig."""
