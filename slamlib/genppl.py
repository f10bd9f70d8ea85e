"""Generative metrics of speech continuations: GenPPL and Auto-BLEU (paper §4.1; REFERENCE §6).

The generated audio (prompt included) is transcribed by an ASR model (`openai/whisper-large-v3-turbo`),
each transcript is scored by a text LM acting as judge (`meta-llama/Llama-3.2-1B`), and

    GenPPL = exp(mean over samples of the per-sample mean token NLL)

so a sample counts the same whatever its length. The same transcripts give Auto-BLEU, how much a
continuation repeats itself, in two definitions that give different numbers (see `slamlib.metrics`):
`auto_bleu` is SlamKit's (bigrams of NLTK word tokens, the paper's column) and `auto_bleu_gslm` is GSLM's.

>>> round(gen_ppl([math.log(2), math.log(8)]), 6)   # exp((ln 2 + ln 8) / 2)
4.0

An empty transcript (silence, or audio Whisper hears nothing in) has no tokens to score: it is left
out of GenPPL and counted in `empty_transcripts`, never scored as 0 or as the judge's BOS alone.

Left out here: choosing and cutting the prompts, sampling continuations and vocoding them (the
generation stage does that and hands over 16 kHz waveforms); long-form (> 30 s) transcription.
Models come through `slamlib.hub.resolve_model`, so a local directory works wherever a hub id does.
"""

from __future__ import annotations

import math
import os
from typing import Iterable, Sequence

import numpy as np
import torch

from slamlib import hub
from slamlib.audio import SAMPLE_RATE
from slamlib.metrics import auto_bleu_gslm, auto_bleu_slamkit
from slamlib.progress import progress
from slamlib.tokenization.features import resolve_device

DEFAULT_ASR_MODEL = "openai/whisper-large-v3-turbo"  # REFERENCE §6: the paper's transcriber
DEFAULT_JUDGE_MODEL = "meta-llama/Llama-3.2-1B"  # REFERENCE §6: the paper's judge LM

_DTYPES = {"float32": torch.float32, "fp32": torch.float32, "float16": torch.float16, "fp16": torch.float16,
           "bfloat16": torch.bfloat16, "bf16": torch.bfloat16}


def _dtype(dtype: str | torch.dtype | None, device: torch.device) -> torch.dtype:
    """float32 unless asked; half precision only on CUDA (CPU kernels for it are slow or missing)."""
    if dtype is None:
        return torch.float32
    resolved = _DTYPES.get(dtype) if isinstance(dtype, str) else dtype
    if resolved not in (torch.float32, torch.float16, torch.bfloat16):
        raise ValueError(f"dtype must be one of {sorted(_DTYPES)} or None, not {dtype!r}")
    if resolved != torch.float32 and device.type != "cuda":
        raise ValueError(f"dtype {dtype!r} needs a CUDA device; got {device}")
    return resolved


def _batches(items: Sequence, size: int):
    if size < 1:
        raise ValueError(f"batch_size must be at least 1, not {size}")
    for start in range(0, len(items), size):
        yield items[start : start + size]


class Transcriber:
    """Whisper ASR over 16 kHz mono float32 waveforms: English transcription, greedy decoding.

    `model` is a hub id or a local directory with a Whisper-style model and processor (what
    `save_pretrained` writes for `WhisperForConditionalGeneration` and `WhisperProcessor`).

    >>> asr = Transcriber("openai/whisper-large-v3-turbo", device="cuda", dtype="fp16")  # doctest: +SKIP
    >>> asr([load_audio("continuation.wav")])                                             # doctest: +SKIP
    ['Once upon a time there was a little girl.']

    `language=None` lets Whisper detect the language per sample (what SlamKit's ASR pipeline does);
    models trained on English only (`*.en`) take no language or task at all. `max_new_tokens=None`
    keeps the model's own limit (448 tokens for Whisper).
    """

    def __init__(self, model: str | os.PathLike = DEFAULT_ASR_MODEL, *, device: str | torch.device = "cpu",
                 dtype: str | torch.dtype | None = None, language: str | None = "en", batch_size: int = 16,
                 max_new_tokens: int | None = None):
        from transformers import AutoModelForSpeechSeq2Seq, AutoProcessor

        self.device = resolve_device(device)
        self.dtype = _dtype(dtype, self.device)
        path = hub.resolve_model(str(model), what="ASR model (Whisper) for GenPPL")
        self.processor = AutoProcessor.from_pretrained(path)
        self.model = AutoModelForSpeechSeq2Seq.from_pretrained(path, dtype=self.dtype).to(self.device).eval()
        self.language = language
        self.batch_size = batch_size
        self.max_new_tokens = max_new_tokens
        extractor = self.processor.feature_extractor
        self.max_samples = int(extractor.n_samples)  # one Whisper window: 30 s
        if int(extractor.sampling_rate) != SAMPLE_RATE:
            raise ValueError(f"{path}: the feature extractor expects {extractor.sampling_rate} Hz, not {SAMPLE_RATE}")

    def _language_kwargs(self) -> dict:
        config = self.model.generation_config
        multilingual = getattr(config, "is_multilingual", True) and hasattr(config, "lang_to_id")
        if not multilingual:
            return {}  # an English-only checkpoint rejects language and task
        kwargs = {"task": "transcribe"}
        if self.language is not None:
            kwargs["language"] = self.language
        return kwargs

    def _check(self, index: int, wav) -> np.ndarray:
        wav = np.asarray(wav, dtype=np.float32)
        if wav.ndim != 1:
            raise ValueError(f"waveform {index}: expected 1-D mono audio, got shape {wav.shape}")
        if len(wav) > self.max_samples:
            raise ValueError(f"waveform {index}: {len(wav) / SAMPLE_RATE:.1f} s is longer than one Whisper window "
                             f"({self.max_samples / SAMPLE_RATE:.0f} s); long-form transcription is not supported")
        return wav

    @torch.inference_mode()
    def _transcribe_batch(self, wavs: list[np.ndarray]) -> list[str]:
        # Each waveform is padded to the full 30 s window and normalised on its own by the feature
        # extractor, so a sample's features do not depend on what it is batched with.
        inputs = self.processor.feature_extractor(wavs, sampling_rate=SAMPLE_RATE, return_tensors="pt",
                                                  return_attention_mask=True)
        kwargs = self._language_kwargs()
        if self.max_new_tokens is not None:
            kwargs["max_new_tokens"] = self.max_new_tokens
        ids = self.model.generate(inputs.input_features.to(self.device, self.dtype),
                                  attention_mask=inputs.attention_mask.to(self.device),
                                  do_sample=False, num_beams=1, **kwargs)
        return [text.strip() for text in self.processor.tokenizer.batch_decode(ids, skip_special_tokens=True)]

    def __call__(self, waveforms: Sequence[np.ndarray], *, batch_size: int | None = None,
                 show_progress: bool = False) -> list[str]:
        """One transcript per waveform, in order; a zero-length waveform gives ''."""
        wavs = [self._check(i, w) for i, w in enumerate(waveforms)]
        spoken = [i for i, w in enumerate(wavs) if len(w)]
        texts = [""] * len(wavs)
        for chunk in progress(list(_batches(spoken, batch_size or self.batch_size)), enabled=show_progress,
                              desc="transcribing"):
            for i, text in zip(chunk, self._transcribe_batch([wavs[i] for i in chunk])):
                texts[i] = text
        return texts

    transcribe = __call__


def load_text_tokenizer(path: str | os.PathLike):
    """A text LM's tokenizer exactly as its `tokenizer.json` defines it.

    `AutoTokenizer` may rebuild a model-specific class from the vocabulary instead (for some model
    types it does, silently changing the tokens), so `tokenizer.json` is read with
    `PreTrainedTokenizerFast`; a directory without one (sentencepiece only) goes to `AutoTokenizer`."""
    from transformers import AutoTokenizer, PreTrainedTokenizerFast

    if os.path.exists(os.path.join(path, "tokenizer.json")):
        return PreTrainedTokenizerFast.from_pretrained(path)
    return AutoTokenizer.from_pretrained(path)


class JudgeLM:
    """A causal text LM that scores transcripts: per-sample mean negative log-likelihood per token.

    The tokenizer's BOS token (when it has one) is prepended as context and never scored; no EOS is
    appended. Without a BOS the first token has no context and only the tokens after it are scored.
    Natural log throughout. Batches are right-padded with an attention mask, so a text's score does
    not depend on the texts batched with it.

    >>> judge = JudgeLM("meta-llama/Llama-3.2-1B", device="cuda")     # doctest: +SKIP
    >>> judge.mean_nll(["The cat sat on the mat.", ""])                 # doctest: +SKIP
    [3.91..., nan]
    """

    def __init__(self, model: str | os.PathLike = DEFAULT_JUDGE_MODEL, *, device: str | torch.device = "cpu",
                 dtype: str | torch.dtype | None = None, batch_size: int = 8):
        from transformers import AutoModelForCausalLM

        self.device = resolve_device(device)
        self.dtype = _dtype(dtype, self.device)
        path = hub.resolve_model(str(model), what="judge text LM for GenPPL")
        self.tokenizer = load_text_tokenizer(path)
        self.model = AutoModelForCausalLM.from_pretrained(path, dtype=self.dtype).to(self.device).eval()
        self.batch_size = batch_size
        self.max_length = getattr(self.model.config, "max_position_embeddings", None)

    def token_ids(self, text: str) -> list[int]:
        """The ids the model sees: BOS (if any) + the text's tokens, with no other special tokens."""
        ids = self.tokenizer(text, add_special_tokens=False).input_ids
        bos = self.tokenizer.bos_token_id
        return ([bos] if bos is not None else []) + list(ids)

    @torch.inference_mode()
    def _batch_nll(self, sequences: list[list[int]]) -> list[float]:
        longest = max(len(s) for s in sequences)
        ids = torch.zeros(len(sequences), longest, dtype=torch.long)  # pad id: any valid id, it is masked
        mask = torch.zeros(len(sequences), longest, dtype=torch.long)
        for row, seq in enumerate(sequences):
            ids[row, : len(seq)] = torch.tensor(seq)
            mask[row, : len(seq)] = 1
        ids, mask = ids.to(self.device), mask.to(self.device)
        logits = self.model(input_ids=ids, attention_mask=mask, use_cache=False).logits[:, :-1].float()
        targets = ids[:, 1:]
        nll = torch.nn.functional.cross_entropy(logits.transpose(1, 2), targets, reduction="none")
        scored = mask[:, 1:].to(nll.dtype)
        return ((nll * scored).sum(1) / scored.sum(1)).tolist()

    def mean_nll(self, texts: Sequence[str], *, batch_size: int | None = None,
                 show_progress: bool = False) -> list[float]:
        """Per text, the mean NLL per scored token (nats); NaN for a text with no token to score
        (empty or whitespace only)."""
        sequences = [self.token_ids(t) if t.strip() else [] for t in texts]
        for i, seq in enumerate(sequences):
            if self.max_length is not None and len(seq) > self.max_length:
                raise ValueError(f"text {i} has {len(seq)} tokens; the judge LM takes at most {self.max_length}")
        results = [math.nan] * len(texts)
        # the first id is context only (BOS, or the first token when there is no BOS)
        scorable = sorted((i for i, s in enumerate(sequences) if len(s) > 1), key=lambda i: -len(sequences[i]))
        for chunk in progress(list(_batches(scorable, batch_size or self.batch_size)), enabled=show_progress,
                              desc="scoring"):
            for i, value in zip(chunk, self._batch_nll([sequences[i] for i in chunk])):
                results[i] = value
        return results


def gen_ppl(mean_nlls: Iterable[float]) -> float:
    """exp(mean over samples of the per-sample mean token NLL), natural log (REFERENCE §6).

    >>> round(gen_ppl([1.0, 3.0]), 4)   # exp(2)
    7.3891
    """
    values = [float(v) for v in mean_nlls]
    if not values:
        raise ValueError("GenPPL of no samples is undefined")
    if not all(math.isfinite(v) for v in values):
        raise ValueError("GenPPL needs finite NLLs; leave out samples that could not be scored first")
    return math.exp(sum(values) / len(values))


def score_transcripts(transcripts: Sequence[str], judge: JudgeLM, *, batch_size: int | None = None,
                      show_progress: bool = False) -> dict:
    """GenPPL and both Auto-BLEUs of given transcripts (see `evaluate_continuations` for the keys)."""
    transcripts = [t.strip() for t in transcripts]
    nlls = judge.mean_nll(transcripts, batch_size=batch_size, show_progress=show_progress)
    kept = [v for v in nlls if math.isfinite(v)]
    n = len(transcripts)
    return {
        "genppl": gen_ppl(kept) if kept else None,
        # SlamKit's Auto-BLEU (the paper's column): word bigrams found elsewhere in the same
        # transcript, averaged over all samples (an empty transcript has no bigrams: 0)
        "auto_bleu": sum(auto_bleu_slamkit(t, n=2) for t in transcripts) / n if n else None,
        # GSLM's self-BLEU (unigrams and bigrams, overlapping n-grams excluded): a different number
        "auto_bleu_gslm": sum(auto_bleu_gslm(t) for t in transcripts) / n if n else None,
        "samples": n,
        "empty_transcripts": sum(not t for t in transcripts),
        "scored": len(kept),  # samples in GenPPL
        "transcripts": transcripts,
        "nlls": [v if math.isfinite(v) else None for v in nlls],  # None: left out of GenPPL
    }


def evaluate_continuations(waveforms: Sequence[np.ndarray],
                           transcriber: Transcriber | str | os.PathLike = DEFAULT_ASR_MODEL,
                           judge: JudgeLM | str | os.PathLike = DEFAULT_JUDGE_MODEL, *,
                           device: str | torch.device = "cpu", dtype: str | torch.dtype | None = None,
                           batch_size: int | None = None, show_progress: bool = False) -> dict:
    """Transcribe generated 16 kHz waveforms and score the transcripts.

    `transcriber` and `judge` are ready objects or model references (hub ids or local directories),
    loaded on `device` in `dtype` when given as references. Returns a JSON-ready dict:
    - `genppl`: exp(mean per-sample mean NLL) over the scored samples (None if none could be scored);
    - `auto_bleu`: SlamKit's Auto-BLEU (bigrams of NLTK word tokens; the paper's column), mean over all samples;
    - `auto_bleu_gslm`: GSLM's Auto-BLEU (uni- and bigrams, no overlaps), mean over all samples;
    - `samples`, `empty_transcripts` (left out of GenPPL), `scored` (in GenPPL);
    - `transcripts` and `nlls` per sample (`None` where a sample was left out).
    """
    if not isinstance(transcriber, Transcriber):
        transcriber = Transcriber(transcriber, device=device, dtype=dtype)
    transcripts = transcriber(waveforms, batch_size=batch_size, show_progress=show_progress)
    if not isinstance(judge, JudgeLM):
        judge = JudgeLM(judge, device=device, dtype=dtype)
    return score_transcripts(transcripts, judge, batch_size=batch_size, show_progress=show_progress)
