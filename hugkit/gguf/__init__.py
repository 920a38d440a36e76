"""GGUF (llama.cpp) files: models whose Q4_0/Q4_1/Q8_0 weights stay in their blocks, embedded tokenizers,
and the built-in chat model. Needs the optional ``gguf`` package (``pip install 'hugkit[gguf]'``).

- ``linear.py``: the block formats, ``GGUFLinear`` / ``GGUFEmbedding`` (the shared home of GGUF blocks).
- ``reader.py``: opening files, metadata -> config.
- ``loader.py``: ``from_pretrained(..., gguf_file=...)``.
- ``builtin.py``: ``default_chat_model()``.
The tokenizer converter lives with the others in ``hugkit/tokenization/converters/gguf.py``.
"""
