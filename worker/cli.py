"""``python -m worker generate``: images on your own machine, no Redis, no Telegram.

Example::

    python -m worker generate --mode text2image --prompt "red cat, 4k photo" --out cat.png
    python -m worker generate --mode mix --image a.jpg --image b.jpg --weights 0.3,0.7 --out mix.png
    python -m worker generate --model kandinsky3 --prompt "a lighthouse in a storm" --out k3.png
    python -m worker generate --model sdxl --prompt "a (red car:1.4) in the fog" --out sdxl.png
    python -m worker generate --mode animate --prompt "0: a quiet forest | 3: the forest on fire" \
        --camera flight_3d --seconds 4 --out flight.mp4

Loads only the models the mode needs, of the one family ``--model`` names (``preload=False``),
prints the seed(s) and per-stage timings, writes ``OUT.png`` (``OUT-1.png``… for several images;
stickers also ``.webp``); an animation writes ``OUT.mp4``: a camera button's schedules
(``--camera``), each replaceable by a keyframe schedule (``--zoom-schedule "0:(1.04), 24:(1)"``…).
"""

from __future__ import annotations

import argparse
import secrets
import sys
from pathlib import Path
from typing import Any

from PIL import Image, UnidentifiedImageError

from contract.animation import ANIMATION_FPS, DEFAULT_SECONDS, PARAMETERS, Camera, preset
from contract.editing import ZOOM_FACTORS, PanDirection
from contract.families import DEFAULT_FAMILY, FAMILIES, describe_family
from contract.modes import Output, describe
from contract.spec import (
    ASPECT_RATIOS,
    DEFAULT_ASPECT,
    DEFAULT_LONG_SIDE,
    LONG_SIDES,
    MAX_SEED,
    JobSpec,
    Mode,
    SpecError,
    Style,
    bucket_size,
)

USAGE_ERROR = 2
"""Exit status for bad arguments or inputs, as argparse uses."""


class UsageError(Exception):
    """A problem the user can fix on the command line."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m worker generate",
        description="Generate images with Kandinsky 2.2, 3.0 or SDXL locally (public weights or a bundle).",
    )
    parser.add_argument("--model", choices=[d.family.value for d in FAMILIES], default=DEFAULT_FAMILY.value,
                        help="model family (default %(default)s); steps and guidance default to its own")
    parser.add_argument("--mode", choices=[m.value for m in Mode], default=Mode.TEXT2IMAGE.value)
    parser.add_argument("--prompt", default="")
    parser.add_argument("--negative", default="", help="negative prompt")
    parser.add_argument("--image", action="append", default=[], help="input image file (repeatable)")
    parser.add_argument("--mask", help="mask image for inpaint (white = repaint)")
    parser.add_argument("--weights", help="two comma-separated weights for mix/blend, e.g. 0.3,0.7")
    parser.add_argument("--style", choices=[s.value for s in Style], default=Style.NONE.value)
    parser.add_argument("--aspect", choices=list(ASPECT_RATIOS), default=DEFAULT_ASPECT)
    parser.add_argument("--long-side", type=int, choices=LONG_SIDES, default=DEFAULT_LONG_SIDE)
    parser.add_argument("--seed", type=int, help="random when absent; printed so you can reuse it")
    parser.add_argument("--steps", type=int, help="default: the family's (50 for 2.2, 25 for 3.0)")
    parser.add_argument("--prior-steps", type=int, default=25)
    parser.add_argument("--guidance", type=float, help="default: the family's (4.0 for 2.2, 3.0 for 3.0)")
    parser.add_argument("--prior-guidance", type=float, default=4.0)
    parser.add_argument("--strength", type=float, default=0.6, help="depth mode: how far to move")
    parser.add_argument("--region", default="", help="edit mode: what to repaint, e.g. 'the sky'")
    parser.add_argument("--zoom", type=float, choices=ZOOM_FACTORS, help="zoom_out mode: the factor")
    parser.add_argument("--pan", choices=[d.value for d in PanDirection], help="pan mode: where to move")
    parser.add_argument("--num-images", type=int, default=1)
    animate = parser.add_argument_group("animate mode (keyframe schedules like '0:(1.02), 24:(1.0)')")
    animate.add_argument("--camera", choices=[c.value for c in Camera], default=Camera.ZOOM_IN.value,
                         help="a camera button's schedules (custom: still, but for the schedules given)")
    animate.add_argument("--seconds", type=float, default=DEFAULT_SECONDS,
                         help="length (default %(default)s)")
    animate.add_argument("--frames", type=int, help="frame count (default: seconds × fps)")
    animate.add_argument("--fps", type=int, default=ANIMATION_FPS)
    for name, parameter in PARAMETERS.items():
        animate.add_argument(f"--{name.replace('_', '-')}-schedule", dest=f"{name}_schedule",
                             help=parameter.unit.replace("%", "%%"))
    animate.add_argument("--cadence", type=int, default=1, help="diffuse every k-th frame, blend the rest")
    animate.add_argument("--no-color-match", action="store_true", help="let the colours drift")
    parser.add_argument("--model-dir", type=Path, help="local bundle; else KANDINSKY_* env or public ids")
    parser.add_argument("--device", help="cuda, cpu or auto (default: KANDINSKY_DEVICE or auto)")
    parser.add_argument("--dtype", help="float16, bfloat16, float32 or auto")
    parser.add_argument("--out", type=Path, required=True, help="output .png path")
    return parser


def _parse_weights(raw: str | None) -> tuple[float, ...]:
    if raw is None:
        return ()
    try:
        return tuple(float(part) for part in raw.split(","))
    except ValueError:
        raise UsageError(f"--weights must be comma-separated numbers, got {raw!r}") from None


def _open_image(path: str, what: str) -> Image.Image:
    try:
        with Image.open(path) as image:
            image.load()
            return image.copy()
    except FileNotFoundError:
        raise UsageError(f"{what} {path} does not exist") from None
    except (UnidentifiedImageError, OSError) as exc:
        raise UsageError(f"{what} {path} is not a readable image: {exc}") from None


def _build_spec(args: argparse.Namespace) -> JobSpec:
    width, height = bucket_size(args.aspect, args.long_side)
    seed = args.seed if args.seed is not None else secrets.randbelow(MAX_SEED + 1)
    data: dict[str, Any] = {
        "model": args.model,
        "mode": args.mode,
        "prompt": args.prompt,
        "negative_prompt": args.negative,
        "style": args.style,
        "width": width,
        "height": height,
        "aspect": args.aspect,  # the engine crops the bucket to exactly this ratio
        "seed": seed,
        "prior_steps": args.prior_steps,
        "prior_guidance": args.prior_guidance,
        "strength": args.strength,
        "num_images": args.num_images,
        "inputs": tuple(f"file:{i}" for i in range(len(args.image))),
        "mask": "file:mask" if args.mask else None,
        "weights": _parse_weights(args.weights),
        "region": args.region,
        "zoom": args.zoom,
        "pan": args.pan,
    }
    needs = describe(Mode(args.mode))
    if needs.animation:
        data["animation"] = _animation(args)
    if needs.video:  # one clip of the mode's first length, unless --seconds names one (the spec checks it)
        data["seconds"] = needs.lengths[0] if args.seconds == DEFAULT_SECONDS else int(args.seconds)
        data["num_images"] = 1
    for name in ("steps", "guidance"):  # left out: the family's default (contract.families)
        if getattr(args, name) is not None:
            data[name] = getattr(args, name)
    try:
        return JobSpec.parse(data)
    except SpecError as exc:
        raise UsageError(str(exc)) from None


def _animation(args: argparse.Namespace) -> dict[str, Any]:
    """The spec's ``animation``: the camera's schedules, the ones given on the command line over them."""
    camera = Camera(args.camera)
    fields: dict[str, Any] = dict(preset(camera)) if camera is not Camera.CUSTOM else {}
    fields.update({name: getattr(args, f"{name}_schedule") for name in PARAMETERS
                   if getattr(args, f"{name}_schedule") is not None})
    frames = args.frames if args.frames is not None else round(args.seconds * args.fps)
    return {**fields, "camera": camera, "frames": frames, "fps": args.fps, "cadence": args.cadence,
            "color_match": not args.no_color_match}


def output_paths(out: Path, count: int, mode: Mode) -> list[list[Path]]:
    """Per image, the files to write: OUT.png, OUT-1.png…; stickers add the matching .webp."""
    stem = out.with_suffix("")
    paths: list[list[Path]] = []
    for i in range(count):
        base = stem if i == 0 else stem.with_name(f"{stem.name}-{i}")
        files = [base.with_suffix(".png")]
        if describe(mode).output is Output.STICKER:
            files.append(base.with_suffix(".webp"))
        paths.append(files)
    return paths


def run(args: argparse.Namespace) -> int:
    wanted = ".mp4" if describe(Mode(args.mode)).output.motion else ".png"
    if args.out.suffix.lower() not in ("", wanted):
        raise UsageError(f"--out must be a {wanted} path, got {args.out}")
    spec = _build_spec(args)
    images = [_open_image(p, "--image") for p in args.image]
    mask = _open_image(args.mask, "--mask") if args.mask else None

    from worker.engine import Engine, EngineSettings, encode_images  # torch: only once args are sound

    overrides: dict[str, Any] = {"preload": False}  # load only what this mode needs
    if args.model_dir is not None:
        overrides["model_dir"] = args.model_dir
    if args.device:
        overrides["device"] = args.device
    if args.dtype:
        overrides["dtype"] = args.dtype
    try:
        engine = Engine.load(EngineSettings(**overrides), families=[spec.model])
    except (FileNotFoundError, ValueError) as exc:
        raise UsageError(str(exc)) from None
    try:
        output = engine.generate(spec, images, mask)
    except ValueError as exc:
        raise UsageError(str(exc)) from None

    encoded = encode_images(output, spec.mode)
    per_image = 2 if spec.output is Output.STICKER else 1
    args.out.parent.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    for i, files in enumerate(output_paths(args.out, len(output.images), spec.mode)):
        for j, path in enumerate(files):
            path.write_bytes(encoded[i * per_image + j].data)
            written.append(path)

    title = describe_family(spec.model).title
    print(f"{title}: mode {spec.mode} {spec.width}x{spec.height} on {engine.device}/{engine.dtype}")
    if output.prompt_truncated:
        limit = describe_family(spec.model).prompt_tokens
        print(f"note: the prompt was longer than the {limit} tokens {title} reads; the rest was cut")
    print("seeds: " + " ".join(str(s) for s in output.seeds))
    print("timings: " + ", ".join(f"{stage} {seconds:.2f}s" for stage, seconds in output.timings.items()))
    for path in written:
        print(f"wrote {path}")
    if output.video is not None:  # an animation: its MP4
        video_path = args.out.with_suffix(".mp4")
        video_path.write_bytes(output.video.data)
        video = output.video
        print(f"animation: {video.frames} frames at {video.fps} fps, {len(video.data)} bytes")
        print(f"wrote {video_path}")
    return 0


def main(argv: list[str]) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse already printed the message (or --help)
        return exc.code if isinstance(exc.code, int) else USAGE_ERROR
    try:
        return run(args)
    except UsageError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return USAGE_ERROR


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
