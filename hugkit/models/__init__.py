"""One module per architecture (model_type); hugkit.auto imports them lazily through MODEL_TABLE."""
