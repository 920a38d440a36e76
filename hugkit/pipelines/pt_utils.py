"""Dataset views for feeding pipelines, as in ``transformers.pipelines.pt_utils``.

``KeyDataset(dataset, "text")`` gives ``dataset[i]["text"]``; ``KeyPairDataset(dataset, "premise", "hypothesis")``
gives ``{"text": dataset[i]["premise"], "text_pair": dataset[i]["hypothesis"]}`` (a text-classification pair).
``dataset`` is anything with ``len()`` and integer indexing whose items are dicts: a 🤗 ``datasets.Dataset``, a list
of dicts, a torch ``Dataset``. A pipeline called on one of these returns a lazy iterator of results.
"""

from __future__ import annotations

from typing import Any

__all__ = ["KeyDataset", "KeyPairDataset"]


def _check_dataset(dataset: Any) -> None:
    if not (hasattr(dataset, "__len__") and hasattr(dataset, "__getitem__")):
        raise TypeError(
            f"KeyDataset needs a dataset with len() and integer indexing (a datasets.Dataset, a list of dicts, a torch "
            f"Dataset), found {type(dataset).__name__}."
        )


class KeyDataset:
    """The ``key`` column of ``dataset``, item by item."""

    def __init__(self, dataset: Any, key: str) -> None:
        _check_dataset(dataset)
        self.dataset = dataset
        self.key = key

    def __len__(self) -> int:
        return len(self.dataset)

    def __iter__(self):
        return (self[index] for index in range(len(self)))

    def __getitem__(self, index: int) -> Any:
        item = self.dataset[index]
        try:
            return item[self.key]
        except (KeyError, TypeError, IndexError):
            keys = sorted(item) if isinstance(item, dict) else type(item).__name__
            raise KeyError(f"Item {index} of the dataset has no {self.key!r} field (it has {keys}).") from None


class KeyPairDataset:
    """``{"text": dataset[i][key1], "text_pair": dataset[i][key2]}``, item by item."""

    def __init__(self, dataset: Any, key1: str, key2: str) -> None:
        _check_dataset(dataset)
        self.dataset = dataset
        self.key1 = key1
        self.key2 = key2

    def __len__(self) -> int:
        return len(self.dataset)

    def __iter__(self):
        return (self[index] for index in range(len(self)))

    def __getitem__(self, index: int) -> dict[str, Any]:
        item = self.dataset[index]
        missing = [key for key in (self.key1, self.key2) if not isinstance(item, dict) or key not in item]
        if missing:
            keys = sorted(item) if isinstance(item, dict) else type(item).__name__
            raise KeyError(f"Item {index} of the dataset has no {missing[0]!r} field (it has {keys}).")
        return {"text": item[self.key1], "text_pair": item[self.key2]}
