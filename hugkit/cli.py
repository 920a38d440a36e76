"""Command line: ``hugkit <task> [--model X] "text" ...`` or lines on stdin -> one JSON line per input.

Examples::

    hugkit sentiment-analysis "I love this!"
    cat reviews.txt | hugkit text-classification --model ./my-model --batch-size 32
    hugkit feature-extraction --model ./minilm --kwargs '{"return_tensors": false}' "hello"
    hugkit text-to-image --model ./stable-diffusion-v1-5 "a red fox in the snow" -o fox.png --steps 25 --seed 0
    hugkit text-to-speech --model ./mms-tts-eng "Hello there" -o hello.wav --seed 0
    hugkit automatic-speech-recognition meeting.wav --timestamps --chunk-length 30
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from typing import Any, Iterator


def _parser() -> argparse.ArgumentParser:
    from .pipelines import SUPPORTED_TASKS

    parser = argparse.ArgumentParser(
        prog="hugkit",
        description="Run a hugkit pipeline. Inputs come from the arguments, or one per line on stdin; "
        "each result is printed as one JSON line.",
    )
    parser.add_argument("task", help=f"one of: {', '.join(SUPPORTED_TASKS)}, text-to-image (see hugkit text-to-image -h)")
    parser.add_argument("inputs", nargs="*", help="texts to process (default: read lines from stdin)")
    parser.add_argument("--model", "-m", default=None, help="checkpoint folder or hub id (default: the task's default)")
    parser.add_argument("--tokenizer", default=None, help="tokenizer folder or id (default: the model's)")
    parser.add_argument("--device", default=None, help="cpu, cuda, cuda:1, mps ... (default: cpu)")
    parser.add_argument("--dtype", default=None, help="float32 (default), float16, bfloat16 or auto")
    parser.add_argument("--batch-size", type=int, default=None, help="inputs per forward pass")
    parser.add_argument("--kwargs", default="{}", help='task options as a JSON object, e.g. \'{"top_k": 2}\'')
    parser.add_argument("--verbose", "-v", action="store_true", help="log what hugkit does to stderr")
    return parser


def _stdin_lines() -> Iterator[str]:
    for line in sys.stdin:
        line = line.rstrip("\n")
        if line.strip():  # blank lines carry nothing to process
            yield line


# Short scheduler names for the command line -> (class name, extra config).
SCHEDULER_ALIASES = {
    "ddim": ("DDIMScheduler", {}),
    "ddpm": ("DDPMScheduler", {}),
    "pndm": ("PNDMScheduler", {}),
    "lms": ("LMSDiscreteScheduler", {}),
    "euler": ("EulerDiscreteScheduler", {}),
    "euler-a": ("EulerAncestralDiscreteScheduler", {}),
    "dpm++": ("DPMSolverMultistepScheduler", {}),
    "dpm++-karras": ("DPMSolverMultistepScheduler", {"use_karras_sigmas": True}),
    "dpm++-sde": ("DPMSolverMultistepScheduler", {"algorithm_type": "sde-dpmsolver++"}),
    "unipc": ("UniPCMultistepScheduler", {}),
    "lcm": ("LCMScheduler", {}),
}


def _text_to_image_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="hugkit text-to-image", description="Generate images with a Stable Diffusion pipeline folder.")
    parser.add_argument("prompt", help="what to draw")
    parser.add_argument("--model", "-m", required=True, help="a diffusers pipeline folder (model_index.json) or hub id")
    parser.add_argument("--output", "-o", default="out.png", help="image file to write (several images: out-1.png, ...)")
    parser.add_argument("--negative-prompt", default=None, help="what to steer away from")
    parser.add_argument("--steps", type=int, default=50, help="denoising steps (default 50)")
    parser.add_argument("--guidance-scale", type=float, default=7.5, help="classifier-free guidance (default 7.5)")
    parser.add_argument("--seed", type=int, default=None, help="random seed, for the same image every time")
    parser.add_argument("--scheduler", default=None, help=f"one of: {', '.join(SCHEDULER_ALIASES)} (default: the model's)")
    parser.add_argument("--height", type=int, default=None, help="image height in pixels (a multiple of 8)")
    parser.add_argument("--width", type=int, default=None, help="image width in pixels (a multiple of 8)")
    parser.add_argument("--num-images", type=int, default=1, help="images to generate")
    parser.add_argument("--device", default=None, help="cpu, cuda, mps ... (default: cpu)")
    parser.add_argument("--dtype", default=None, help="float32 (default), float16 or bfloat16")
    parser.add_argument("--verbose", "-v", action="store_true", help="log what hugkit does to stderr")
    return parser


def text_to_image(argv: list[str]) -> int:
    args = _text_to_image_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    if args.scheduler is not None and args.scheduler not in SCHEDULER_ALIASES:
        print(f"hugkit: error: unknown scheduler {args.scheduler!r}; choose one of: {', '.join(SCHEDULER_ALIASES)}", file=sys.stderr)
        return 2
    import torch

    from .diffusion.pipeline_utils import DiffusionPipeline
    from .diffusion.registry import find_component_class
    from .modeling_utils import to_torch_dtype

    try:
        pipe = DiffusionPipeline.from_pretrained(args.model, torch_dtype=to_torch_dtype(args.dtype), device=args.device)
        if args.scheduler is not None:
            name, extra = SCHEDULER_ALIASES[args.scheduler]
            pipe.scheduler = find_component_class(name).from_config(pipe.scheduler.config, **extra)
        generator = torch.Generator().manual_seed(args.seed) if args.seed is not None else None
        images = pipe(
            args.prompt, negative_prompt=args.negative_prompt, num_inference_steps=args.steps,
            guidance_scale=args.guidance_scale, height=args.height, width=args.width,
            num_images_per_prompt=args.num_images, generator=generator,
        ).images
        paths = [args.output] if len(images) == 1 else [_numbered(args.output, i + 1) for i in range(len(images))]
        for image, path in zip(images, paths):
            image.save(path)
            sys.stdout.write(json.dumps({"image": path}) + "\n")
    except (KeyError, ValueError, TypeError, OSError) as exc:
        print(f"hugkit: error: {exc}", file=sys.stderr)
        return 1
    return 0


def _text_to_speech_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="hugkit text-to-speech", description="Speak a text with a VITS / MMS-TTS checkpoint.")
    parser.add_argument("text", help="what to say")
    parser.add_argument("--output", "-o", default="out.wav", help="audio file to write (default out.wav; .flac, .ogg work too)")
    parser.add_argument("--model", "-m", default=None, help="a VITS checkpoint folder or hub id (default: facebook/mms-tts-eng if cached)")
    parser.add_argument("--seed", type=int, default=None, help="random seed (torch.manual_seed), for the same audio every time")
    parser.add_argument("--speaker-id", type=int, default=None, help="speaker, for multi-speaker checkpoints")
    parser.add_argument("--speaking-rate", type=float, default=None, help="above 1 speaks faster (default: the model's)")
    parser.add_argument("--noise-scale", type=float, default=None, help="variation of the voice (default: the model's)")
    parser.add_argument("--device", default=None, help="cpu, cuda, mps ... (default: cpu)")
    parser.add_argument("--verbose", "-v", action="store_true", help="log what hugkit does to stderr")
    return parser


def text_to_speech(argv: list[str]) -> int:
    args = _text_to_speech_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        import soundfile
    except (ImportError, OSError) as exc:  # OSError: the package is there but libsndfile is not
        print(f"hugkit: error: writing audio files needs the soundfile package ({exc}): pip install 'hugkit[audio]'", file=sys.stderr)
        return 1
    import torch

    from .hub import CheckpointNotFoundError
    from .pipelines import pipeline

    try:
        pipe = pipeline("text-to-speech", model=args.model, device=args.device)
    except CheckpointNotFoundError as exc:
        if args.model is not None:
            print(f"hugkit: error: {exc}", file=sys.stderr)
        else:
            print("hugkit: error: no text-to-speech model was given and none is available offline. Download a VITS "
                  "checkpoint, e.g. `huggingface-cli download facebook/mms-tts-eng` (then it is the default), or pass "
                  "--model path/to/vits-checkpoint.", file=sys.stderr)
        return 1
    except (KeyError, ValueError, TypeError, OSError, ImportError) as exc:
        print(f"hugkit: error: {exc}", file=sys.stderr)
        return 1
    forward = {name: value for name, value in (("speaker_id", args.speaker_id), ("speaking_rate", args.speaking_rate),
                                               ("noise_scale", args.noise_scale)) if value is not None}
    try:
        if args.seed is not None:
            torch.manual_seed(args.seed)
        speech = pipe(args.text, forward_params=forward)
        soundfile.write(args.output, speech["audio"].T, speech["sampling_rate"])
    except (ValueError, TypeError, OSError, RuntimeError, ImportError) as exc:  # soundfile: RuntimeError/TypeError for bad formats
        print(f"hugkit: error: {exc}", file=sys.stderr)
        return 1
    seconds = round(len(speech["audio"]) / speech["sampling_rate"], 3)
    sys.stdout.write(json.dumps({"audio": args.output, "sampling_rate": speech["sampling_rate"], "seconds": seconds}) + "\n")
    return 0


def _asr_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="hugkit automatic-speech-recognition",
        description="Transcribe audio files (wav, flac, ogg; mp3 and others with ffmpeg) with Whisper "
        "(default: the built-in Whisper tiny.en). Prints the text, or timestamped lines.",
    )
    parser.add_argument("files", nargs="+", help="audio files to transcribe")
    parser.add_argument("--model", "-m", default=None, help="a Whisper checkpoint folder or hub id (default: built-in tiny.en)")
    parser.add_argument("--timestamps", action="store_true", help="print [start --> end] lines, one per segment")
    parser.add_argument("--word-timestamps", action="store_true", help="print one [start --> end] line per word")
    parser.add_argument("--chunk-length", type=float, default=None, metavar="S",
                        help="cut long audio into S-second windows transcribed in batches (e.g. 30)")
    parser.add_argument("--stride-length", type=float, default=None, metavar="S", help="overlap of the windows (default: S/6)")
    parser.add_argument("--batch-size", type=int, default=None, help="windows per forward pass (with --chunk-length)")
    parser.add_argument("--language", default=None, help="spoken language (multilingual models), e.g. en or french")
    parser.add_argument("--task", default=None, choices=("transcribe", "translate"), help="multilingual models: translate to English")
    parser.add_argument("--num-beams", type=int, default=None, help="beam search width (default: the pipeline's)")
    parser.add_argument("--stream", action="store_true", help="print the text as it is decoded")
    parser.add_argument("--json", action="store_true", help="print the pipeline's result as one JSON line per file")
    parser.add_argument("--device", default=None, help="cpu, cuda, mps ... (default: cpu)")
    parser.add_argument("--dtype", default=None, help="float32 (default), float16 or bfloat16")
    parser.add_argument("--verbose", "-v", action="store_true", help="log what hugkit does to stderr")
    return parser


def _clock(seconds: float | None) -> str:
    return "   ?   " if seconds is None else f"{seconds:7.2f}"


def automatic_speech_recognition(argv: list[str]) -> int:
    args = _asr_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    if args.timestamps and args.word_timestamps:
        print("hugkit: error: pass --timestamps or --word-timestamps, not both", file=sys.stderr)
        return 2
    if args.stream and (args.timestamps or args.word_timestamps or args.json):
        print("hugkit: error: --stream prints plain text; leave out --timestamps / --word-timestamps / --json", file=sys.stderr)
        return 2
    from .pipelines import pipeline

    options: dict[str, Any] = {}
    if args.chunk_length:
        options["chunk_length_s"] = args.chunk_length
    if args.stride_length is not None:
        options["stride_length_s"] = args.stride_length
    if args.timestamps or args.word_timestamps:
        options["return_timestamps"] = "word" if args.word_timestamps else True
    generate = {name: value for name, value in (("language", args.language), ("task", args.task),
                                                ("num_beams", args.num_beams)) if value is not None}
    if generate:
        options["generate_kwargs"] = generate
    try:
        pipe = pipeline("automatic-speech-recognition", model=args.model, device=args.device, dtype=args.dtype,
                        batch_size=args.batch_size)
        for path in args.files:
            label = f"{path}: " if len(args.files) > 1 else ""
            if args.stream:
                sys.stdout.write(label)
                for piece in pipe(path, stream=True, **options):
                    sys.stdout.write(piece)
                    sys.stdout.flush()
                sys.stdout.write("\n")
                continue
            result = pipe(path, **options)
            if args.json:
                sys.stdout.write(json.dumps(result, ensure_ascii=False) + "\n")
            elif "chunks" in result:
                if label:
                    sys.stdout.write(f"{path}:\n")
                for chunk in result["chunks"]:
                    start, end = chunk["timestamp"]
                    sys.stdout.write(f"[{_clock(start)} --> {_clock(end)}] {chunk['text'].strip()}\n")
            else:
                sys.stdout.write(f"{label}{result['text'].strip()}\n")
            sys.stdout.flush()
    except (KeyError, ValueError, TypeError, OSError, ImportError, NotImplementedError) as exc:
        message = exc.args[0] if isinstance(exc, KeyError) and exc.args else exc
        print(f"hugkit: error: {message}", file=sys.stderr)
        return 1
    except BrokenPipeError:
        return 0
    return 0


def _numbered(path: str, number: int) -> str:
    stem, dot, ext = path.rpartition(".")
    return f"{stem}-{number}.{ext}" if dot else f"{path}-{number}"


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "text-to-image":
        return text_to_image(argv[1:])
    if argv and argv[0] in ("text-to-speech", "text-to-audio"):
        return text_to_speech(argv[1:])
    if argv and argv[0] == "automatic-speech-recognition":
        return automatic_speech_recognition(argv[1:])
    args = _parser().parse_intermixed_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        options: dict[str, Any] = json.loads(args.kwargs)
        if not isinstance(options, dict):
            raise ValueError
    except ValueError:
        print(f"hugkit: --kwargs must be a JSON object, got {args.kwargs!r}", file=sys.stderr)
        return 2
    from .pipelines import pipeline

    try:
        pipe = pipeline(
            args.task, model=args.model, tokenizer=args.tokenizer, device=args.device, dtype=args.dtype,
            batch_size=args.batch_size,
        )
        inputs = args.inputs if args.inputs else _stdin_lines()
        results = pipe(list(inputs) if args.inputs else inputs, **options)
        for result in results:
            sys.stdout.write(json.dumps(result, ensure_ascii=False) + "\n")
            sys.stdout.flush()
    except (KeyError, ValueError, TypeError, OSError) as exc:
        message = exc.args[0] if isinstance(exc, KeyError) and exc.args else exc
        print(f"hugkit: error: {message}", file=sys.stderr)
        return 1
    except BrokenPipeError:  # e.g. piped into `head`
        return 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
