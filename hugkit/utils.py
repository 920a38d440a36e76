"""``from hugkit.utils import logging``: transformers' import path (``transformers.utils.logging``) for
``hugkit.logging``."""

from . import logging

__all__ = ["logging"]
