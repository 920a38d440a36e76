"""The main job: sentiment analysis with hugkit's built-in model (no download), batch and single."""

import time

start = time.perf_counter()
from hugkit import pipeline  # noqa: E402

classifier = pipeline("sentiment-analysis")
print(classifier("I love using Hugging Face!"))
print(f"first result {time.perf_counter() - start:.2f} s after start")

reviews = [
    "A gripping, beautifully acted story.",
    "The plot makes no sense and the jokes fall flat.",
    "Not bad at all, I'd watch it again.",
]
for review, result in zip(reviews, classifier(reviews)):
    print(f"{result['label']:>8} {result['score']:.3f}  {review}")
print(classifier("An odd film.", top_k=None))
