"""``set_seed``: seed every random number generator generation and sampling read, as transformers' ``set_seed`` does.

Python's ``random``, NumPy's global generator (when NumPy is installed) and torch (CPU and every CUDA device), so
``set_seed(n)`` before ``generate(do_sample=True)`` gives the tokens transformers gives after its ``set_seed(n)``.
"""

from __future__ import annotations

import random


def set_seed(seed: int, deterministic: bool = False) -> None:
    """Seed ``random``, ``numpy`` and ``torch`` with ``seed``; ``deterministic=True`` also makes torch use
    deterministic algorithms where it has them (slower on GPU; some operations then raise)."""
    if not isinstance(seed, int) or isinstance(seed, bool):
        raise TypeError(f"set_seed takes an int seed, found {type(seed).__name__}: {seed!r}.")
    random.seed(seed)
    try:
        import numpy as np
    except ImportError:  # numpy is optional
        np = None
    if np is not None:
        np.random.seed(seed % 2**32)  # numpy's legacy seeding takes 32 bits; transformers passes small seeds
    import torch

    torch.manual_seed(seed)
    torch.cuda.manual_seed_all(seed)  # safe without CUDA: it is applied lazily
    if deterministic:
        torch.use_deterministic_algorithms(True)
