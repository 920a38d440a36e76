"""hugkit: fast, offline-first Hugging Face-style inference."""
