"""Stand-ins for the `slam` profile's hub assets: the same formats, tiny sizes, written offline.

The `slam` profile reads a dozen published assets (mHuBERT-25Hz, the TWIST k-means and unit
HiFi-GAN, Qwen2.5-0.5B, Whisper, Llama-3.2-1B, LibriSpeech, sTinyStories, SpokenSwag, the
SpokenStoryCloze / ZeroSpeech sBLIMP / SALMon benchmark folders, a published Slam checkpoint) and
Libri-Light (a local download).
`build_standins(root)` writes one stand-in for each, in the file format and layout of the real
one, so that every code path that reads a real asset can run on a CPU in seconds and without the
network:

>>> s = build_standins("/tmp/standins")                          # doctest: +SKIP
>>> get_profile("slam", slam_overrides(s, steps=5))             # doctest: +SKIP

What a stand-in keeps: file names, folder layouts, parquet column names and types, audio as
encoded bytes of real (espeak) speech, config fields, parameter names and tensor layouts, special
tokens and their roles. What it does not keep: sizes (widths, layers where the profile does not
read them, vocabularies, row counts) and anything learned: every model has random weights, so
units, transcripts and scores mean nothing. Use them to test plumbing, never to judge a result.

Everything here is written without slamlib's loaders (HuBERT features for the k-means come from
`HubertModel(output_hidden_states=True)`, as SlamKit computes them; HiFi-GAN weights are named
from the original code's layout), so that loading a stand-in through slamlib is a real check.
"""

from __future__ import annotations

import hashlib
import json
import random
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from slamlib.standins.models import _QWEN2_ARCH, _llama, _plain_speech_lm, _qwen2, _slamkit_checkpoint, _whisper
from slamlib.standins.speech import (  # noqa: F401 (the sizes tests check against)
    LIBRILIGHT_FILES, LIBRISPEECH_SPLITS, N_SALMON, N_SBLIMP_IDS, N_STORIES, N_STORYCLOZE, N_SWAG, SALMON_PARTS, SAMPLE_RATE,
    SBLIMP_VOICES, _librilight, _librispeech, _salmon, _sblimp, _swuggy, _Speaker, _spokenswag, _stinystories, _storycloze, _texts)
from slamlib.standins.units import (  # noqa: F401
    FIT_SECONDS, HIFIGAN_CONFIG_NAME, HIFIGAN_NAME, HUBERT_LAYER, KMEANS_NAME, N_UNITS, _hifigan, _hubert, _kmeans)


@dataclass(frozen=True)
class StandIns:
    """Where each stand-in is; the real asset it replaces is in the comment."""

    root: Path
    hubert: Path  # slprl/mhubert-base-25hz: a HubertModel directory
    kmeans: Path  # the TWIST k-means: a joblib-pickled sklearn KMeans, 500 centroids
    hifigan_checkpoint: Path  # hifigan_lj_mhubert_base_25hz.pt: {"generator": state_dict}
    hifigan_config: Path  # hifigan_lj_mhubert_base_25hz_config.json
    text_lm: Path  # Qwen/Qwen2.5-0.5B: Qwen2ForCausalLM + its tokenizer
    asr: Path  # openai/whisper-large-v3-turbo: WhisperForConditionalGeneration + WhisperProcessor
    judge: Path  # meta-llama/Llama-3.2-1B: LlamaForCausalLM + tokenizer.json
    speech_lm: Path  # slprl/slam_scaled: a SlamKit UnitLM over 500 units (vocab 502), weights under lm.
    speech_lm_plain: Path  # the same network as a plain transformers Qwen2ForCausalLM folder
    librispeech: Path  # openslr/librispeech_asr: CONFIG/SPLIT/0000.parquet
    stinystories: Path  # slprl/sTinyStories: data/data-0000N-of-00002.parquet
    spokenswag: Path  # slprl/SpokenSwag: data/{train,validation}-00000-of-00001.parquet
    ssc: Path  # SpokenStoryCloze sSC: N_STORY_correct.wav / N_STORY_incorrect.wav
    tsc: Path  # SpokenStoryCloze tSC
    sblimp: Path  # ZeroSpeech 2021 sLM21_dataset/syntactic/dev: gold.csv + wavs
    swuggy: Path  # ZeroSpeech 2021 sLM21_dataset/lexical/dev: gold.csv + wavs
    salmon: Path  # SALMon: PART/sample_<index>_<0|1>.wav
    librilight: Path  # Libri-Light: SUBSET/SPEAKER/BOOK/FILE.flac + FILE.json (voice activity)


def build_standins(root, seed: int = 0) -> StandIns:
    """Write every stand-in under `root` (deterministic for a seed; about 10-20 s on 2 cores)."""
    import torch

    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    torch.manual_seed(seed)
    s = StandIns(
        root=root, hubert=root / "mhubert-base-25hz", kmeans=root / "speech_tokenizer" / KMEANS_NAME,
        hifigan_checkpoint=root / "speech_tokenizer" / HIFIGAN_NAME,
        hifigan_config=root / "speech_tokenizer" / HIFIGAN_CONFIG_NAME,
        text_lm=root / "Qwen2.5-0.5B", asr=root / "whisper-large-v3-turbo", judge=root / "Llama-3.2-1B",
        speech_lm=root / "slam_scaled", speech_lm_plain=root / "slam_scaled_transformers", librispeech=root / "librispeech_asr", stinystories=root / "sTinyStories",
        spokenswag=root / "SpokenSwag", ssc=root / "spoken_storycloze" / "sSC",
        tsc=root / "spoken_storycloze" / "tSC", sblimp=root / "sLM21_dataset" / "syntactic" / "dev",
        swuggy=root / "sLM21_dataset" / "lexical" / "dev",
        salmon=root / "salmon", librilight=root / "librilight",
    )
    speaker = _Speaker()
    try:
        speech = []  # waveforms of the pretraining corpora: the k-means is fitted on their features
        speech += _librispeech(s.librispeech, speaker, rng)
        speech += _stinystories(s.stinystories, speaker, rng)
        _librilight(s.librilight, speaker, random.Random(seed + 1))  # its own stream: the others stay as they were
        _spokenswag(s.spokenswag, speaker, rng)
        _storycloze(s.ssc, s.tsc, speaker, rng)
        _sblimp(s.sblimp, speaker, rng)
        _salmon(s.salmon, speaker, rng)
        _swuggy(s.swuggy, speaker, random.Random(seed + 2))  # its own stream: the others stay as they were
    finally:
        speaker.close()
    with _quiet_saving():
        hubert = _hubert(s.hubert, seed)
        _kmeans(s.kmeans, hubert, speech, seed)
        _hifigan(s.hifigan_checkpoint, s.hifigan_config, seed)
        texts = _texts(random.Random(seed), 200)
        _qwen2(s.text_lm, texts, seed)
        _whisper(s.asr, texts, seed)
        _llama(s.judge, texts, seed)
        _slamkit_checkpoint(s.speech_lm, seed)
        _plain_speech_lm(s.speech_lm_plain, seed)
    return s


@contextmanager
def _quiet_saving():
    """No "Writing model shards" bar for each tiny model."""
    from transformers.utils import logging as hf_logging

    was_enabled = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if was_enabled:
            hf_logging.enable_progress_bar()


def slam_overrides(standins: StandIns, steps: int = 10) -> dict[str, str]:
    """`--set key=value` overrides that point the `slam` profile at the stand-ins and make its
    sizes small (context, batch, steps, rows)."""
    s = standins
    benchmarks = [["sblimp", str(s.sblimp)], ["swuggy", str(s.swuggy)], ["ssc", str(s.ssc)], ["tsc", str(s.tsc)],
                  ["salmon", str(s.salmon)]]
    return {
        # assets
        "tokenizer.features.model": str(s.hubert),
        "tokenizer.kmeans": str(s.kmeans),
        "tokenizer.kmeans_sha256": hashlib.sha256(s.kmeans.read_bytes()).hexdigest(),  # a pickle: pinned
        "speech_sample.source": str(s.librispeech),
        "model.base": str(s.text_lm),
        # the text LM's architecture, which the profile also carries for offline dry runs
        **{f"model.architecture.{k}": str(v) for k, v in _QWEN2_ARCH.items()},
        "eval.benchmarks": json.dumps(benchmarks),
        "eval.asr_model": str(s.asr),
        "eval.judge_model": str(s.judge),
        "eval.hifigan_checkpoint": str(s.hifigan_checkpoint),
        "eval.hifigan_config": str(s.hifigan_config),
        "data.hub.librispeech.dataset": str(s.librispeech),
        "data.hub.stinystories.dataset": str(s.stinystories),
        "data.hub.spokenswag.dataset": str(s.spokenswag),
        "data.librilight": str(s.librilight),
        # sizes (a window shorter than a Libri-Light utterance, so that windowed encoding runs)
        "tokenizer.window_seconds": "20",
        "tokenizer.window_overlap_seconds": "4",
        "speech_sample.n_utterances": "4",
        "data.hub.librispeech.rows": "8",
        "data.hub.stinystories.rows": "8",
        "data.hub.spokenswag.rows": "8",
        "train.context": "128",
        "train.batch_size": "2",
        "train.grad_accum": "1",
        "train.budget": "none",
        "train.max_steps": str(steps),
        "train.min_warmup_steps": "1",
        "train.probe_steps": "1",
        "train.eval_every": str(steps),
        "train.save_every": str(steps),
        "train.log_every": "1",
        "dpo.batch_size": "2",
        "dpo.grad_accum": "1",
        "dpo.max_length": "256",
        "dpo.max_steps": str(steps),
        "dpo.eval_every": str(steps),
        "dpo.log_every": "1",
        "eval.n_generations": "2",
        "eval.batch_tokens": "1024",
    }


