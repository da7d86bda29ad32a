"""Translation and transcription time per job, next to the generation time of the same job.

Issue 19 asks that translating a prompt add under 2% to a 1024² generation and that a 10 s voice
message be transcribed in under a second on the GPU. This bench runs, in one process and on the
same device, the resident language models (worker/language) and the resident engine:

* per job: the worker's translation of a Russian prompt and negative prompt (``translate_prompts``,
  the call worker.jobs makes before the engine), and the engine's generation of that job;
* per voice message: PyAV decoding and Whisper transcription of a ``--voice-s`` second OGG/Opus note.

The figures are ratios against the generation in the same run: translation as a share of the job,
transcription as seconds per second of audio. On the tiny bundle (the default) both models are
random and tiny, so the ratios say what the code path costs, not what the public models cost; run
with ``--model-dir`` (a bundle of real-size weights) or ``--public`` on a GPU for those.

    python bench/bench_language.py                       # tiny bundle, CPU, 512², 3 jobs
    python bench/bench_language.py --size 1024x1024 --steps 50 --public   # the public models

Results go to bench/results/bench_language-<UTC time>.json.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

from bench import common
from contract.spec import JobSpec, Mode

PROMPT = "рыжая лиса в заснеженном лесу, золотой час, масляная живопись"
NEGATIVE = "размыто, низкое качество"


async def run(args: argparse.Namespace) -> dict[str, Any]:
    from devkit.audio import make_voice
    from worker.engine import Engine, EngineSettings
    from worker.engine.settings import parse_size
    from worker.language import Language, LanguageSettings, engine_spec, resolve
    from worker.language.transcribe import decode_audio

    meta = common.metadata()
    model_dir: Path | None = args.model_dir
    if model_dir is None and not args.public:
        from devkit.stack import ensure_tiny_bundle

        model_dir = ensure_tiny_bundle()
    device, dtype = resolve(LanguageSettings(device=args.device, dtype=args.dtype))
    started = time.perf_counter()
    engine = Engine.load(EngineSettings(model_dir=model_dir, device=device, dtype=dtype))
    language = Language.load(LanguageSettings(model_dir=model_dir, device=device, dtype=dtype))
    load_s = time.perf_counter() - started
    width, height = parse_size(args.size)
    voice = make_voice(args.voice_s)
    jobs: list[dict[str, float]] = []
    for i in range(args.jobs + 1):  # the first is a warm-up, left out of the figures
        spec = JobSpec(mode=Mode.TEXT2IMAGE, prompt=PROMPT, negative_prompt=NEGATIVE, width=width,
                       height=height, steps=args.steps, prior_steps=max(2, args.steps // 2), seed=i)
        t0 = time.perf_counter()
        translation = language.translate_prompts(spec)
        t1 = time.perf_counter()
        engine.generate(engine_spec(spec, translation))
        t2 = time.perf_counter()
        audio = decode_audio(voice, max_s=args.voice_s + 1)
        t3 = time.perf_counter()
        heard = language.transcriber.transcribe(audio.samples)
        t4 = time.perf_counter()
        if i:
            jobs.append({"translate_s": t1 - t0, "generate_s": t2 - t1, "decode_s": t3 - t2,
                         "transcribe_s": t4 - t3, "heard_chars": float(len(heard.text))})
    mean = {k: sum(j[k] for j in jobs) / len(jobs) for k in jobs[0]}
    return {
        **meta, "bench": "bench_language", "device": device, "dtype": dtype, "size": args.size,
        "steps": args.steps, "voice_s": args.voice_s,
        "models": "public" if args.public else str(args.model_dir or "tiny bundle"),
        "translate_model": language.translator.model_id if language.translator else "off",
        "transcribe_model": language.transcriber.model_id, "load_s": load_s, "jobs": jobs, "mean": mean,
        "translate_share_of_job": mean["translate_s"] / (mean["translate_s"] + mean["generate_s"]),
        "transcribe_s_per_audio_s": (mean["decode_s"] + mean["transcribe_s"]) / args.voice_s,
    }


def print_report(report: dict[str, Any]) -> None:
    print(f"bench_language on {report['machine']['cpu']} ({report['device']}/{report['dtype']}), models: "
          f"{report['models']}; {report['size']}, {report['steps']} steps; load average at start "
          f"{report['load_average_start']}")
    m = report["mean"]
    rows = [
        ["translate (prompt + negative)", round(m["translate_s"] * 1000, 2)],
        ["generate", round(m["generate_s"] * 1000, 2)],
        [f"decode {report['voice_s']} s voice note", round(m["decode_s"] * 1000, 2)],
        [f"transcribe {report['voice_s']} s voice note", round(m["transcribe_s"] * 1000, 2)],
    ]
    common.print_table(f"mean per job over {len(report['jobs'])} jobs", ["stage", "ms"], rows)
    print(f"translation is {report['translate_share_of_job']:.2%} of a job (target < 2% at 1024² on a GPU); "
          f"transcription takes {report['transcribe_s_per_audio_s']:.3f} s per second of audio "
          f"(target: a 10 s message under 1 s on a GPU)")


def main(argv: list[str] | None = None) -> int:
    parser = common.parser(__doc__)
    parser.add_argument("--jobs", type=int, default=3, help="measured jobs (after one warm-up)")
    parser.add_argument("--size", default="512x512", help="a size bucket, WxH")
    parser.add_argument("--steps", type=int, default=4, help="decoder steps (prior: half, >= 2)")
    parser.add_argument("--voice-s", type=float, default=10.0, help="seconds of the voice message")
    parser.add_argument("--model-dir", type=Path, default=None, help="a local bundle (default: the tiny one)")
    parser.add_argument("--public", action="store_true", help="the public checkpoints (downloads them)")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--dtype", default="auto")
    args = parser.parse_args(argv)
    if args.jobs < 1 or args.steps < 1 or args.voice_s <= 0:
        parser.error("--jobs, --steps and --voice-s must be positive")
    return common.run_and_write(run, args, print_report, "bench_language")


if __name__ == "__main__":
    sys.exit(main())
