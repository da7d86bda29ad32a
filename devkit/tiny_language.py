"""Tiny random-weight translation and speech models, written locally with no network.

The worker's language models (worker/language) load these with the very same ``from_pretrained``
code as the public checkpoints: the same classes, file names and config keys, only tiny. Their
tokenizers are trained here, in-process, on a few sentences (sentencepiece for Marian, byte-level
BPE for Whisper). Outputs are gibberish; every shape, token path and generation step is real.

Layout (what ``save_pretrained`` writes for the matching public repo)::

    translate/   Helsinki-NLP/opus-mt-ru-en     (MarianMTModel + MarianTokenizer: source.spm,
                                                 target.spm, vocab.json)
    transcribe/  openai/whisper-large-v3-turbo  (WhisperForConditionalGeneration + WhisperProcessor)

``write_tiny_language_models(bundle)`` is called by devkit.tiny_models.write_tiny_bundle.
"""

from __future__ import annotations

import io
import json
import re
import tempfile
from pathlib import Path

import sentencepiece as spm
import torch
from tokenizers import ByteLevelBPETokenizer
from transformers import (
    GenerationConfig,
    MarianConfig,
    MarianMTModel,
    MarianTokenizer,
    WhisperConfig,
    WhisperFeatureExtractor,
    WhisperForConditionalGeneration,
    WhisperProcessor,
    WhisperTokenizer,
)

TRANSLATE_FOLDER = "translate"
TRANSCRIBE_FOLDER = "transcribe"

RUSSIAN = (
    "красный кот сидит на крыше",
    "рыжая лиса в заснеженном лесу",
    "портрет девушки, масляная живопись",
    "ночной город под дождём, неоновые огни",
    "маленький робот читает книгу",
    "старый маяк на берегу моря на закате",
    "космонавт верхом на лошади",
    "весёлая собака в шляпе",
    "горы и озеро ранним утром",
    "замок из стекла в облаках",
    "бронзовая статуя в музее",
    "акварельный рисунок цветов",
)
"""What the tiny translation model's source tokenizer learns from (prompts as people type them)."""
ENGLISH = (
    "a red cat sits on the roof",
    "a red fox in a snowy forest",
    "portrait of a girl, oil painting",
    "night city in the rain, neon lights",
    "a small robot reads a book",
    "an old lighthouse on the sea shore at sunset",
    "an astronaut riding a horse",
    "a happy dog in a hat",
    "mountains and a lake early in the morning",
    "a glass castle in the clouds",
    "a bronze statue in a museum",
    "a watercolor drawing of flowers",
)

SPM_VOCAB_SIZE = 160
"""Pieces per sentencepiece model: enough for the sentences above, a few dozen words each."""
MARIAN_MAX_LENGTH = 24
"""Generated tokens at most (the public model says 512): random weights rarely stop on their own."""
WHISPER_MAX_LENGTH = 20
"""Decoder tokens at most, prompt included (the public 448): random weights rarely stop either."""
WHISPER_LANGUAGES = ("en", "ru", "uk", "de", "fr", "es", "it", "zh", "ja", "ko")
"""A subset of Whisper's languages, in its token order; enough for language detection to choose."""
WHISPER_MEL_BINS = 80
"""The v1/v2 feature size (large-v3 and turbo use 128); the feature extractor follows the config."""
WHISPER_SOURCE_POSITIONS = 1500
"""Fixed by the 30 s window: 3000 mel frames, halved by the encoder's strided conv."""


def _train_sentencepiece(lines: tuple[str, ...]) -> bytes:
    model = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(lines), model_writer=model, vocab_size=SPM_VOCAB_SIZE, model_type="unigram",
        character_coverage=1.0, hard_vocab_limit=False, num_threads=1, minloglevel=2,
    )
    return model.getvalue()


def _spm_pieces(model: bytes) -> list[str]:
    sp = spm.SentencePieceProcessor(model_proto=model)
    return [sp.id_to_piece(i) for i in range(sp.get_piece_size())]


def write_tiny_marian(directory: Path, seed: int = 0) -> Path:
    """A ru→en Marian model with the opus-mt layout: two sentencepiece models, one shared vocab."""
    directory.mkdir(parents=True, exist_ok=True)
    source, target = _train_sentencepiece(RUSSIAN), _train_sentencepiece(ENGLISH)
    (directory / "source.spm").write_bytes(source)
    (directory / "target.spm").write_bytes(target)
    # opus-mt: "</s>" 0, "<unk>" 1, the pieces of both models, "<pad>" last (the decoder start).
    tokens = ["</s>", "<unk>"]
    pieces = dict.fromkeys(_spm_pieces(source) + _spm_pieces(target))
    tokens += [p for p in pieces if p not in ("<unk>", "<s>", "</s>")]
    tokens.append("<pad>")
    vocab = {token: i for i, token in enumerate(tokens)}
    (directory / "vocab.json").write_text(json.dumps(vocab, ensure_ascii=False), encoding="utf-8")
    tokenizer = MarianTokenizer(
        source_spm=str(directory / "source.spm"), target_spm=str(directory / "target.spm"),
        vocab=str(directory / "vocab.json"), source_lang="ru", target_lang="en",
    )
    tokenizer.save_pretrained(directory)
    pad = vocab["<pad>"]
    config = MarianConfig(
        vocab_size=len(vocab), d_model=16, encoder_layers=1, decoder_layers=1, encoder_attention_heads=2,
        decoder_attention_heads=2, encoder_ffn_dim=32, decoder_ffn_dim=32, max_position_embeddings=64,
        pad_token_id=pad, eos_token_id=0, decoder_start_token_id=pad, forced_eos_token_id=0,
        scale_embedding=True, share_encoder_decoder_embeddings=True,
    )
    torch.manual_seed(seed)
    model = MarianMTModel(config).eval()
    model.generation_config = GenerationConfig(
        bad_words_ids=[[pad]], decoder_start_token_id=pad, eos_token_id=0, forced_eos_token_id=0,
        max_length=MARIAN_MAX_LENGTH, num_beams=4, pad_token_id=pad, renormalize_logits=True,
    )
    model.save_pretrained(directory)
    return directory


def _whisper_tokenizer() -> tuple[dict[str, int], list[tuple[str, str]], list[str]]:
    """Vocab, merges and special tokens laid out as Whisper's: text tokens, then <|endoftext|>,
    <|startoftranscript|>, the languages, the tasks, … <|notimestamps|> last."""
    bpe = ByteLevelBPETokenizer()
    bpe.train_from_iterator([*ENGLISH, *RUSSIAN], vocab_size=400, min_frequency=1, show_progress=False)
    with tempfile.TemporaryDirectory() as tmp:
        bpe.save_model(tmp)
        vocab: dict[str, int] = json.loads((Path(tmp) / "vocab.json").read_text(encoding="utf-8"))
        lines = (Path(tmp) / "merges.txt").read_text(encoding="utf-8").splitlines()
    merges = [(a, b) for a, b in (line.split(" ") for line in lines if line and not line.startswith("#"))]
    specials = ["<|endoftext|>", "<|startoftranscript|>", *(f"<|{code}|>" for code in WHISPER_LANGUAGES),
                "<|translate|>", "<|transcribe|>", "<|startoflm|>", "<|startofprev|>", "<|nospeech|>",
                "<|notimestamps|>"]
    for token in specials:
        vocab[token] = len(vocab)
    return vocab, merges, specials


def _token_id(tokenizer: WhisperTokenizer, token: str) -> int:
    found = tokenizer.convert_tokens_to_ids(token)
    if not isinstance(found, int):
        raise TypeError(f"token {token!r} has no single id")
    return found


def write_tiny_whisper(directory: Path, seed: int = 0) -> Path:
    """A multilingual Whisper (transcribe and translate tasks, language detection) of two layers."""
    directory.mkdir(parents=True, exist_ok=True)
    vocab, merges, specials = _whisper_tokenizer()
    tokenizer = WhisperTokenizer(vocab=vocab, merges=merges)
    tokenizer.add_special_tokens({"additional_special_tokens": specials[1:]})
    ids: dict[str, int] = {token: _token_id(tokenizer, token) for token in specials}
    if any(ids[token] != vocab[token] for token in specials):
        raise RuntimeError("Whisper special tokens moved: the generation config would point elsewhere")
    extractor = WhisperFeatureExtractor(feature_size=WHISPER_MEL_BINS)
    WhisperProcessor(feature_extractor=extractor, tokenizer=tokenizer).save_pretrained(directory)
    eot, sot = ids["<|endoftext|>"], ids["<|startoftranscript|>"]
    space = _token_id(tokenizer, "Ġ")
    # Whisper's own config suppresses ~90 symbol tokens; here every piece that is not a whole word
    # (bytes, fragments of a UTF-8 letter) is suppressed, so random weights still say words.
    words = re.compile(r"^ ?[a-zа-яё]{2,}$")
    suppress = [i for token, i in vocab.items() if token not in specials
                and not words.match(tokenizer.convert_tokens_to_string([token]))]
    config = WhisperConfig(
        vocab_size=len(vocab), num_mel_bins=WHISPER_MEL_BINS, encoder_layers=1, decoder_layers=1,
        encoder_attention_heads=2, decoder_attention_heads=2, encoder_ffn_dim=32, decoder_ffn_dim=32,
        d_model=16, max_source_positions=WHISPER_SOURCE_POSITIONS, max_target_positions=64,
        decoder_start_token_id=sot, bos_token_id=eot, eos_token_id=eot, pad_token_id=eot,
    )
    torch.manual_seed(seed)
    model = WhisperForConditionalGeneration(config).eval()
    model.generation_config = GenerationConfig(
        decoder_start_token_id=sot, bos_token_id=eot, eos_token_id=eot, pad_token_id=eot,
        begin_suppress_tokens=[space, eot], suppress_tokens=suppress, max_length=WHISPER_MAX_LENGTH,
        is_multilingual=True, no_timestamps_token_id=ids["<|notimestamps|>"],
        prev_sot_token_id=ids["<|startofprev|>"],
        lang_to_id={f"<|{code}|>": ids[f"<|{code}|>"] for code in WHISPER_LANGUAGES},
        task_to_id={"transcribe": ids["<|transcribe|>"], "translate": ids["<|translate|>"]},
    )
    model.save_pretrained(directory)
    return directory


def write_tiny_language_models(bundle: Path, seed: int = 0) -> Path:
    """Both models under ``bundle`` (translate/, transcribe/); deterministic for a given seed."""
    write_tiny_marian(Path(bundle) / TRANSLATE_FOLDER, seed)
    write_tiny_whisper(Path(bundle) / TRANSCRIBE_FOLDER, seed)
    return Path(bundle)
