"""Voice messages → text: audio decoded by PyAV, words by a resident Whisper model.

PyAV ships its own FFmpeg in its wheel (no system package), reads whatever Telegram delivers
(OGG/Opus voice notes, MP3/M4A audio files, MP4 video notes) and resamples to Whisper's 16 kHz
mono. The duration limit is checked on the decoded samples, never on what the client claimed.
"""

from __future__ import annotations

import io
import logging
import threading
from dataclasses import dataclass
from typing import Any

import av
import numpy as np
import torch
from transformers import AutoModelForSpeechSeq2Seq, AutoProcessor

from contract.language import UNDETERMINED, TranscriptionError
from worker.language.settings import DEFAULT_BEAMS

log = logging.getLogger(__name__)

SAMPLE_RATE = 16_000
"""What Whisper's feature extractor takes."""
WINDOW_S = 30
"""Whisper reads 30 s at a time; longer recordings are cut into windows, transcribed as one batch."""
SILENCE_PEAK = 1e-3
"""A recording whose loudest sample stays under -60 dBFS holds no speech (a muted microphone)."""
MIN_SPEECH_S = 0.1
"""Shorter than a tenth of a second is a tap on the record button, not a word."""
MAX_INPUT_BYTES = 20 * 1024 * 1024
"""Telegram's download limit for bots; a bigger blob is not a voice message."""


class AudioRejected(Exception):
    """The recording cannot be transcribed; ``error`` says why (shown to the user)."""

    def __init__(self, error: TranscriptionError, message: str) -> None:
        super().__init__(message)
        self.error = error


@dataclass(frozen=True)
class DecodedAudio:
    samples: np.ndarray
    """16 kHz mono float32 in [-1, 1]."""

    @property
    def duration_s(self) -> float:
        return len(self.samples) / SAMPLE_RATE


def decode_audio(data: bytes, max_s: float) -> DecodedAudio:
    """16 kHz mono samples of the first audio stream; AudioRejected for empty, undecodable, too long."""
    if not data:
        raise AudioRejected(TranscriptionError.EMPTY, "zero-length recording")
    if len(data) > MAX_INPUT_BYTES:
        raise AudioRejected(TranscriptionError.TOO_LONG, f"{len(data)} bytes")
    chunks: list[np.ndarray] = []
    total = 0
    limit = int(max_s * SAMPLE_RATE)
    try:
        with av.open(io.BytesIO(data), mode="r") as container:
            if not container.streams.audio:
                raise AudioRejected(TranscriptionError.UNDECODABLE, "no audio stream")
            stream = container.streams.audio[0]
            resampler = av.AudioResampler(format="flt", layout="mono", rate=SAMPLE_RATE)
            for frame in container.decode(stream):
                for out in resampler.resample(frame):
                    chunk = out.to_ndarray().reshape(-1)
                    chunks.append(chunk)
                    total += len(chunk)
                    if total > limit:
                        raise AudioRejected(TranscriptionError.TOO_LONG, f"longer than {max_s:.0f} s")
            for out in resampler.resample(None):
                chunks.append(out.to_ndarray().reshape(-1))
    except AudioRejected:
        raise
    except (av.error.FFmpegError, ValueError, IndexError, OSError) as exc:
        raise AudioRejected(TranscriptionError.UNDECODABLE, f"{type(exc).__name__}: {exc}") from None
    samples = np.concatenate(chunks).astype(np.float32) if chunks else np.zeros(0, dtype=np.float32)
    if len(samples) > limit:
        raise AudioRejected(TranscriptionError.TOO_LONG, f"longer than {max_s:.0f} s")
    if len(samples) < MIN_SPEECH_S * SAMPLE_RATE:
        raise AudioRejected(TranscriptionError.EMPTY, f"{len(samples)} samples")
    if not np.isfinite(samples).all() or float(np.abs(samples).max()) < SILENCE_PEAK:
        raise AudioRejected(TranscriptionError.EMPTY, "silence")
    return DecodedAudio(samples)


@dataclass(frozen=True)
class Heard:
    text: str
    language: str


class Transcriber:
    """One resident Whisper model with its processor."""

    def __init__(self, source: str, *, device: str, dtype: torch.dtype, beams: int = DEFAULT_BEAMS,
                 model_id: str | None = None, cache_dir: str | None = None) -> None:
        self.model_id = model_id or source
        self.device = device
        self.dtype = dtype
        self.beams = beams
        self.processor: Any = AutoProcessor.from_pretrained(source, cache_dir=cache_dir)
        model: Any = AutoModelForSpeechSeq2Seq.from_pretrained(source, dtype=dtype, cache_dir=cache_dir)
        self.model: Any = model.to(device).eval()
        self._lock = threading.Lock()

    def generate_kwargs(self) -> dict[str, Any]:
        """What ``generate`` gets beyond the model's own generation config (the tests' pipeline run
        gets the same)."""
        return {"task": "transcribe", "num_beams": self.beams}

    @torch.no_grad()
    def transcribe(self, samples: np.ndarray) -> Heard:
        """The words in 16 kHz mono ``samples``, and the language Whisper detected in the first window."""
        if samples.ndim != 1 or not len(samples):
            raise ValueError("transcribe() needs non-empty 16 kHz mono samples")
        window = WINDOW_S * SAMPLE_RATE
        pieces = [samples[i:i + window] for i in range(0, len(samples), window)]
        with self._lock:
            features = self.processor.feature_extractor(
                pieces, sampling_rate=SAMPLE_RATE, return_tensors="pt", return_attention_mask=True)
            inputs = features.input_features.to(self.device, self.dtype)
            mask = features.attention_mask.to(self.device)
            language_ids = self.model.detect_language(inputs[:1])
            language_token = self.processor.tokenizer.convert_ids_to_tokens(int(language_ids[0]))
            ids = self.model.generate(inputs, attention_mask=mask, language=language_token,
                                      **self.generate_kwargs())
            texts: list[str] = self.processor.batch_decode(ids, skip_special_tokens=True)
        language = language_token.strip("<|>") if isinstance(language_token, str) else UNDETERMINED
        return Heard(" ".join(" ".join(texts).split()), language or UNDETERMINED)
