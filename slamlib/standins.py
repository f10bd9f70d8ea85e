"""Stand-ins for the `slam` profile's hub assets: the same formats, tiny sizes, written offline.

The `slam` profile reads a dozen published assets (mHuBERT-25Hz, the TWIST k-means and unit
HiFi-GAN, Qwen2.5-0.5B, Whisper, Llama-3.2-1B, LibriSpeech, sTinyStories, SpokenSwag, the
SpokenStoryCloze / ZeroSpeech sBLIMP / SALMon benchmark folders, a published Slam checkpoint).
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
import io
import json
import random
import warnings
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np

SAMPLE_RATE = 16_000
HUBERT_LAYER = 11  # the slam profile's hidden_states[11]
N_UNITS = 500
FIT_SECONDS = 40.0  # speech the k-means is fitted on (1,000 frames at 25 Hz: 2 per centroid)
KMEANS_NAME = "mhubert_base_25hz_cp_mls_cv_sp_fisher_L11_km500.bin"  # the official file names
HIFIGAN_NAME = "hifigan_lj_mhubert_base_25hz.pt"
HIFIGAN_CONFIG_NAME = "hifigan_lj_mhubert_base_25hz_config.json"

# rows and pairs written (a few tens of pairs per benchmark)
LIBRISPEECH_SPLITS = {"all": {"train.clean.100": 4, "train.clean.360": 2, "train.other.500": 2,
                              "validation.clean": 3},
                      "clean": {"validation": 4, "test": 2}}
N_STORIES = 8  # sTinyStories rows, in two shards
N_SWAG = {"train": 8, "validation": 3}
N_STORYCLOZE = 20  # pairs in each of sSC and tSC
N_SBLIMP_IDS, SBLIMP_VOICES = 10, ("Alex", "Victoria")  # 20 pairs
SALMON_PARTS, N_SALMON = ("bg_alignment", "sentiment_consistency", "speaker_consistency"), 8  # 24 pairs

# espeak voices (name, words per minute, pitch) standing in for the corpora's readers
_VOICES = [("en-us", 175, 50), ("en", 160, 40), ("en-us+f3", 180, 60), ("en+m3", 150, 35)]
_SWAG_SPEAKERS = ("af_bella", "am_michael", "bf_emma", "bm_george")  # Kokoro's 2 US + 2 UK voices


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
    salmon: Path  # SALMon: PART/sample_<index>_<0|1>.wav


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
        salmon=root / "salmon",
    )
    speaker = _Speaker()
    try:
        speech = []  # waveforms of the pretraining corpora: the k-means is fitted on their features
        speech += _librispeech(s.librispeech, speaker, rng)
        speech += _stinystories(s.stinystories, speaker, rng)
        _spokenswag(s.spokenswag, speaker, rng)
        _storycloze(s.ssc, s.tsc, speaker, rng)
        _sblimp(s.sblimp, speaker, rng)
        _salmon(s.salmon, speaker, rng)
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
    benchmarks = [["sblimp", str(s.sblimp)], ["ssc", str(s.ssc)], ["tsc", str(s.tsc)], ["salmon", str(s.salmon)]]
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
        # sizes
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


# --- speech ---------------------------------------------------------------------------------------

class _Speaker:
    """espeak-ng, one process, voices by index."""

    def __init__(self):
        from slamlib.data.tts import EspeakTTS

        self.tts = EspeakTTS(workers=1)

    def __call__(self, text: str, voice: int = 0, aligned: bool = False):
        from slamlib.data.tts import Voice

        name, rate, pitch = _VOICES[voice % len(_VOICES)]
        out = self.tts.synthesize_aligned(text, Voice(name, rate=rate, pitch=pitch))
        return out if aligned else out[0]

    def close(self):
        self.tts.close()


def _encode(wav: np.ndarray, fmt: str) -> bytes:
    import soundfile as sf

    buf = io.BytesIO()
    sf.write(buf, np.asarray(wav, dtype=np.float32), SAMPLE_RATE, format=fmt, subtype="PCM_16")
    return buf.getvalue()


def _write_wav(path: Path, wav: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(_encode(wav, "WAV"))


_NOUNS = ["dog", "cat", "girl", "boy", "bird", "king", "farmer", "teacher", "fox", "baker", "sailor", "horse"]
_ADJS = ["small", "happy", "old", "brave", "quiet", "red", "tired", "clever", "kind", "little"]
_VERBS = ["found", "saw", "carried", "painted", "lost", "opened", "followed", "cleaned", "wanted", "built"]
_THINGS = ["box", "boat", "kite", "door", "ball", "garden", "letter", "basket", "bridge", "window"]
_PLACES = ["park", "river", "forest", "market", "school", "hill", "village", "beach"]


def _sentence(rng: random.Random) -> str:
    return (f"The {rng.choice(_ADJS)} {rng.choice(_NOUNS)} {rng.choice(_VERBS)} a {rng.choice(_THINGS)} "
            f"near the {rng.choice(_PLACES)}.")


def _story(rng: random.Random, n: int = 3) -> list[str]:
    name = rng.choice(["Lily", "Tom", "Anna", "Ben", "Mia", "Sam"])
    first = f"Once upon a time, {name} lived near the {rng.choice(_PLACES)}."
    return [first] + [_sentence(rng) for _ in range(n - 1)]


def _texts(rng: random.Random, n: int) -> list[str]:
    return [" ".join(_story(rng, 3)) for _ in range(n)]


def _parquet(path: Path, rows: list[dict], features) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    # the schema carries the `datasets` features (Audio columns) in its metadata, as hub shards do;
    # written with pyarrow because `datasets` encodes Audio through torchcodec (REFERENCE §7)
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pylist(rows, schema=features.arrow_schema), path)


def _librispeech(folder: Path, speak: _Speaker, rng: random.Random) -> list[np.ndarray]:
    """openslr/librispeech_asr's parquet layout (CONFIG/SPLIT/0000.parquet), its columns and its
    FLAC audio; texts upper case without punctuation, as LibriSpeech's are."""
    from datasets import Audio, Features, Value

    features = Features({"file": Value("string"), "audio": Audio(sampling_rate=SAMPLE_RATE),
                         "text": Value("string"), "speaker_id": Value("int64"), "chapter_id": Value("int64"),
                         "id": Value("string")})
    waves = []
    for config, splits in LIBRISPEECH_SPLITS.items():
        for split, n in splits.items():
            rows = []
            for i in range(n):
                speaker, chapter = rng.randrange(100, 9000), rng.randrange(1000, 200_000)
                utt = f"{speaker}-{chapter}-{i:04d}"
                text = " ".join(_sentence(rng) for _ in range(2)).upper().replace(".", "")
                wav = speak(text, voice=speaker)
                waves.append(wav)
                rows.append({"file": f"{utt}.flac", "audio": {"bytes": _encode(wav, "FLAC"), "path": f"{utt}.flac"},
                             "text": text, "speaker_id": speaker, "chapter_id": chapter, "id": utt})
            _parquet(folder / config / split / "0000.parquet", rows, features)
    return waves


def _stinystories(folder: Path, speak: _Speaker, rng: random.Random) -> list[np.ndarray]:
    """slprl/sTinyStories: one voice, `audio, text, aligned_text, split_sentence`, shards whose
    names name no split (all of it is train)."""
    from datasets import Audio, Features, List, Value

    features = Features({"audio": Audio(sampling_rate=SAMPLE_RATE), "text": Value("string"),
                         "aligned_text": List({"word": Value("string"), "start_time": Value("float64"),
                                               "end_time": Value("float64")}),
                         "split_sentence": Value("bool")})
    rows, waves = [], []
    for i in range(N_STORIES):
        text = " ".join(_story(rng, 4))
        wav, words = speak(text, voice=0, aligned=True)
        waves.append(wav)
        rows.append({"audio": {"bytes": _encode(wav, "WAV"), "path": f"story_{i:06d}.wav"}, "text": text,
                     "aligned_text": words, "split_sentence": bool(i % 2)})
    half = len(rows) // 2
    for shard, part in enumerate((rows[:half], rows[half:])):
        _parquet(folder / "data" / f"data-{shard:05d}-of-00002.parquet", part, features)
    return waves


def _spokenswag(folder: Path, speak: _Speaker, rng: random.Random) -> None:
    """slprl/SpokenSwag: `speaker, prompt_text, chosen_text, rejected_text, prompt, chosen,
    rejected, auto_bleu2`, one parquet file per split under data/."""
    from datasets import Audio, Features, Value

    audio = Audio(sampling_rate=SAMPLE_RATE)
    features = Features({"speaker": Value("string"), "prompt_text": Value("string"),
                         "chosen_text": Value("string"), "rejected_text": Value("string"),
                         "prompt": audio, "chosen": audio, "rejected": audio, "auto_bleu2": Value("float64")})
    for split, n in N_SWAG.items():
        rows = []
        for i in range(n):
            voice = rng.randrange(len(_SWAG_SPEAKERS))
            texts = {"prompt": _sentence(rng), "chosen": _sentence(rng), "rejected": _sentence(rng)}
            row = {"speaker": _SWAG_SPEAKERS[voice], "auto_bleu2": round(rng.random() * 0.3, 4)}
            for role, text in texts.items():
                row[f"{role}_text"] = text
                row[role] = {"bytes": _encode(speak(text, voice=voice), "WAV"), "path": f"{split}_{i}_{role}.wav"}
            rows.append(row)
        _parquet(folder / "data" / f"{split}-00000-of-00001.parquet", rows, features)


def _uuid(rng: random.Random) -> str:
    h = f"{rng.getrandbits(128):032x}"
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def _storycloze(ssc: Path, tsc: Path, speak: _Speaker, rng: random.Random) -> None:
    """SpokenStoryCloze: `N_STORYID_correct.wav` and `N_STORYID_incorrect.wav`, whole stories.
    sSC's wrong ending is a plausible other sentence; tSC's is another story's ending."""
    stories = [(_uuid(rng), _story(rng, 4), _sentence(rng)) for _ in range(N_STORYCLOZE)]
    for i, (story, sentences, other) in enumerate(stories):
        body = " ".join(sentences[:-1])
        _write_wav(ssc / f"{i}_{story}_correct.wav", speak(f"{body} {sentences[-1]}"))
        _write_wav(ssc / f"{i}_{story}_incorrect.wav", speak(f"{body} {other}"))
        foreign = stories[(i + 1) % len(stories)][1][-1]
        _write_wav(tsc / f"{i}_{story}_correct.wav", speak(f"{body} {sentences[-1]}"))
        _write_wav(tsc / f"{i}_{story}_incorrect.wav", speak(f"{body} {foreign}"))


def _sblimp(folder: Path, speak: _Speaker, rng: random.Random) -> None:
    """ZeroSpeech 2021 sBLIMP dev: wavs named by random ids (no suffix in gold.csv) and
    gold.csv (filename, type, subtype, correct, id, voice, transcription)."""
    import pandas as pd

    rows, used = [], set()
    for pair in range(N_SBLIMP_IDS):
        noun = rng.choice(_NOUNS)
        good, bad = f"The {noun}s are sleeping.", f"The {noun}s is sleeping."
        for v, voice in enumerate(SBLIMP_VOICES):
            for correct, text in ((1, good), (0, bad)):
                name = "".join(rng.choice("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ") for _ in range(10))
                assert name not in used
                used.add(name)
                _write_wav(folder / f"{name}.wav", speak(text, voice=v))
                rows.append({"filename": name, "type": "subject_verb_agreement",
                             "subtype": "regular_plural_subject_verb_agreement_1", "correct": correct,
                             "id": pair, "voice": voice, "transcription": text})
    pd.DataFrame(rows).to_csv(folder / "gold.csv", index=False)


def _salmon(folder: Path, speak: _Speaker, rng: random.Random) -> None:
    """SALMon: one folder per part, `sample_<index>_0.wav` the consistent recording and
    `sample_<index>_1.wav` the one whose second half changes (voice, or added noise)."""
    for p, part in enumerate(SALMON_PARTS):
        for i in range(N_SALMON):
            first, second = _sentence(rng), _sentence(rng)
            a, b = speak(first, voice=p), speak(second, voice=p)
            if part == "speaker_consistency":
                changed = speak(second, voice=p + 1)
            else:
                noise = np.random.default_rng(rng.getrandbits(32)).normal(0, 0.05, len(b)).astype(np.float32)
                changed = np.clip(b + noise, -1, 1)
            _write_wav(folder / part / f"sample_{i}_0.wav", np.concatenate([a, b]))
            _write_wav(folder / part / f"sample_{i}_1.wav", np.concatenate([a, changed]))


# --- speech tokenizer and vocoder -----------------------------------------------------------------

def _hubert(folder: Path, seed: int):
    """A random HubertModel with mHuBERT-25Hz's convolutions (total stride 640: 25 Hz at 16 kHz),
    12 layers (the profile reads layer 11) of width 32."""
    import torch
    from transformers import HubertConfig, HubertModel, Wav2Vec2FeatureExtractor

    config = HubertConfig(
        hidden_size=32, num_hidden_layers=12, num_attention_heads=2, intermediate_size=64,
        conv_dim=(32,) * 7, conv_stride=(5, 2, 2, 2, 2, 2, 4), conv_kernel=(10, 3, 3, 3, 3, 2, 4), conv_bias=False,
        num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=2, feat_extract_norm="group",
        do_stable_layer_norm=False, architectures=["HubertModel"],
    )
    torch.manual_seed(seed)
    model = HubertModel(config).eval()
    model.save_pretrained(folder)
    Wav2Vec2FeatureExtractor(feature_size=1, sampling_rate=SAMPLE_RATE, padding_value=0.0, do_normalize=False,
                             return_attention_mask=False).save_pretrained(folder)
    return model


def _kmeans(path: Path, hubert, waves: list[np.ndarray], seed: int) -> None:
    """sklearn KMeans (500 clusters) on layer-11 features of the speech, pickled with joblib as
    the official file is. Features as SlamKit computes them: 40 zero samples on both sides,
    `hidden_states[11]`."""
    import joblib
    import torch
    from sklearn.cluster import KMeans

    # the first FIT_SECONDS of speech as one recording: one forward pass (a few seconds less than
    # one per utterance on a cold CPU, where every new input length costs a kernel setup)
    speech = np.concatenate(waves)[: int(FIT_SECONDS * SAMPLE_RATE)]
    with torch.inference_mode():
        out = hubert(torch.from_numpy(np.pad(speech, 40))[None], output_hidden_states=True)
    x = out.hidden_states[HUBERT_LAYER][0].numpy().astype(np.float32)
    if len(x) < 2 * N_UNITS:  # too little speech for 500 clusters: add features near it
        extra = np.random.default_rng(seed).normal(x.mean(0), x.std(0), size=(2 * N_UNITS - len(x), x.shape[1]))
        x = np.concatenate([x, extra.astype(np.float32)])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # near-duplicate frames: fewer distinct points than clusters
        km = KMeans(n_clusters=N_UNITS, n_init=1, max_iter=20, random_state=seed).fit(x)
    path.parent.mkdir(parents=True, exist_ok=True)
    joblib.dump(km, path)


# The official config's fields; widths small (the loader reads every size from the config).
# 10 * 8 * 8 = 640 samples per unit frame, as the official [5, 4, 4, 4, 2].
_HIFIGAN_CONFIG = {
    "resblock": "1", "num_gpus": 0, "batch_size": 16, "learning_rate": 0.0002, "adam_b1": 0.8, "adam_b2": 0.99,
    "lr_decay": 0.999, "seed": 1234,
    "upsample_rates": [10, 8, 8], "upsample_kernel_sizes": [20, 16, 16], "upsample_initial_channel": 32,
    "resblock_kernel_sizes": [3, 7], "resblock_dilation_sizes": [[1, 3, 5], [1, 3, 5]],
    "num_embeddings": N_UNITS, "embedding_dim": 16, "model_in_dim": 16,
    "segment_size": 8960, "code_hop_size": 640, "f0": False, "num_mels": 80, "num_freq": 1025, "n_fft": 1024,
    "hop_size": 256, "win_size": 1024, "dur_prediction_weight": 1.0,
    "dur_predictor_params": {"encoder_embed_dim": 16, "var_pred_hidden_dim": 16, "var_pred_kernel_size": 3,
                             "var_pred_dropout": 0.5},
    "sampling_rate": SAMPLE_RATE, "fmin": 0, "fmax": 8000, "fmax_for_loss": None,
}


def _hifigan(checkpoint: Path, config_path: Path, seed: int) -> None:
    """`{"generator": state_dict}` with the original CodeHiFiGAN's parameter names and
    old-style weight norm (`weight_g`, `weight_v`), random weights."""
    import torch

    cfg = _HIFIGAN_CONFIG
    gen = torch.Generator().manual_seed(seed)
    state: dict[str, torch.Tensor] = {}

    def conv(name: str, shape: tuple[int, int, int], bias: int):
        v = torch.randn(shape, generator=gen) * 0.01
        state[f"{name}.weight_g"] = v.square().sum(dim=(1, 2), keepdim=True).sqrt()
        state[f"{name}.weight_v"] = v
        state[f"{name}.bias"] = torch.randn(bias, generator=gen) * 0.01

    c, emb = cfg["upsample_initial_channel"], cfg["embedding_dim"]
    state["dict.weight"] = torch.randn(cfg["num_embeddings"], emb, generator=gen)
    conv("conv_pre", (c, cfg["model_in_dim"], 7), c)
    for i, (u, k) in enumerate(zip(cfg["upsample_rates"], cfg["upsample_kernel_sizes"])):
        conv(f"ups.{i}", (c // 2**i, c // 2 ** (i + 1), k), c // 2 ** (i + 1))  # ConvTranspose1d: (in, out, k)
    j = 0
    for i in range(len(cfg["upsample_rates"])):
        ch = c // 2 ** (i + 1)
        for k, dilations in zip(cfg["resblock_kernel_sizes"], cfg["resblock_dilation_sizes"]):
            for n in range(len(dilations)):
                conv(f"resblocks.{j}.convs1.{n}", (ch, ch, k), ch)
                conv(f"resblocks.{j}.convs2.{n}", (ch, ch, k), ch)
            j += 1
    conv("conv_post", (1, c // 2 ** len(cfg["upsample_rates"]), 7), 1)
    dp = cfg["dur_predictor_params"]
    h, kk = dp["var_pred_hidden_dim"], dp["var_pred_kernel_size"]
    for name, shape in (("conv1.0", (h, dp["encoder_embed_dim"], kk)), ("conv2.0", (h, h, kk))):
        state[f"dur_predictor.{name}.weight"] = torch.randn(shape, generator=gen) * 0.1
        state[f"dur_predictor.{name}.bias"] = torch.zeros(h)
    for name in ("ln1", "ln2"):
        state[f"dur_predictor.{name}.weight"] = torch.ones(h)
        state[f"dur_predictor.{name}.bias"] = torch.zeros(h)
    state["dur_predictor.proj.weight"] = torch.randn(1, h, generator=gen) * 0.1
    state["dur_predictor.proj.bias"] = torch.tensor([0.7])  # exp(0.7) - 1: about one frame per unit
    checkpoint.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"generator": state}, checkpoint)
    config_path.write_text(json.dumps(cfg, indent=4) + "\n")


# --- text models ----------------------------------------------------------------------------------

def _byte_bpe(texts: list[str], vocab_size: int) -> tuple[dict[str, int], list[tuple[str, str]]]:
    """A byte-level BPE (GPT-2 byte alphabet, as Qwen2, Whisper and Llama 3 use) trained on texts."""
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                  show_progress=False)
    tok.train_from_iterator(texts + [t.lower() for t in texts] + [t.upper() for t in texts], trainer)
    model = json.loads(tok.to_str())["model"]
    return model["vocab"], [tuple(m) for m in model["merges"]]


def _padded(n: int, multiple: int = 64) -> int:
    return -(-n // multiple) * multiple


# Qwen2.5-0.5B's shape, shrunk: 14 heads over 2 KV heads become 4 over 2; embeddings tied.
_QWEN2_ARCH = {"hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2, "num_attention_heads": 4,
               "num_key_value_heads": 2}


def _qwen2(folder: Path, texts: list[str], seed: int) -> None:
    """Qwen2ForCausalLM + Qwen2Tokenizer: `<|endoftext|>` is EOS and PAD and there is no BOS token
    (config bos/eos ids both `<|endoftext|>`), `<|im_start|>`/`<|im_end|>` follow it, and the
    embedding has more rows than the tokenizer has tokens, as in Qwen2.5."""
    import torch
    from transformers import GenerationConfig, Qwen2Config, Qwen2ForCausalLM, Qwen2Tokenizer

    vocab, merges = _byte_bpe(texts, 400)
    tok = Qwen2Tokenizer(vocab=vocab, merges=merges, errors="replace", model_max_length=131072)
    tok.add_special_tokens({"additional_special_tokens": ["<|im_start|>", "<|im_end|>"]})
    eot = tok.convert_tokens_to_ids("<|endoftext|>")
    # at least 502 rows, as Qwen2.5's 151,936: the slam profile's unit embeddings are its first 502 rows
    config = Qwen2Config(vocab_size=_padded(max(len(tok), N_UNITS + 2)), max_position_embeddings=32768, rms_norm_eps=1e-6,
                         rope_theta=1_000_000.0, tie_word_embeddings=True, bos_token_id=eot, eos_token_id=eot,
                         use_sliding_window=False, max_window_layers=_QWEN2_ARCH["num_hidden_layers"],
                         attention_dropout=0.0, architectures=["Qwen2ForCausalLM"], **_QWEN2_ARCH)
    torch.manual_seed(seed)
    model = Qwen2ForCausalLM(config).to(torch.bfloat16)  # the published weights are bf16
    model.generation_config = GenerationConfig(bos_token_id=eot, eos_token_id=eot, max_new_tokens=2048)
    model.save_pretrained(folder)
    tok.save_pretrained(folder)


_WHISPER_LANGUAGES = ("en", "de", "fr")


def _whisper(folder: Path, texts: list[str], seed: int) -> None:
    """WhisperForConditionalGeneration + WhisperProcessor as large-v3-turbo saves them:
    multilingual special tokens (`<|startoftranscript|>`, languages, tasks, `<|notimestamps|>`),
    128 mel bins, 30 s windows, and a generation config with `lang_to_id` / `task_to_id`."""
    import torch
    from transformers import (
        GenerationConfig, WhisperConfig, WhisperFeatureExtractor, WhisperForConditionalGeneration,
        WhisperProcessor, WhisperTokenizer,
    )

    vocab, merges = _byte_bpe(texts, 400)
    tok = WhisperTokenizer(vocab=vocab, merges=merges, model_max_length=448)
    specials = (["<|endoftext|>", "<|startoftranscript|>"] + [f"<|{lang}|>" for lang in _WHISPER_LANGUAGES]
                + ["<|translate|>", "<|transcribe|>", "<|startoflm|>", "<|startofprev|>", "<|nospeech|>",
                   "<|notimestamps|>"])
    tok.add_special_tokens({"additional_special_tokens": specials[1:]})
    ids = {t: tok.convert_tokens_to_ids(t) for t in specials}
    eot, sot = ids["<|endoftext|>"], ids["<|startoftranscript|>"]
    space = tok.convert_tokens_to_ids("Ġ")  # Whisper suppresses a leading space (id 220 in its vocabulary)
    config = WhisperConfig(
        vocab_size=_padded(len(tok)), num_mel_bins=128, d_model=32, encoder_layers=1, decoder_layers=1,
        encoder_attention_heads=2, decoder_attention_heads=2, encoder_ffn_dim=64, decoder_ffn_dim=64,
        max_source_positions=1500, max_target_positions=448, pad_token_id=eot, bos_token_id=eot, eos_token_id=eot,
        decoder_start_token_id=sot, begin_suppress_tokens=[space, eot], architectures=["WhisperForConditionalGeneration"],
    )
    torch.manual_seed(seed)
    model = WhisperForConditionalGeneration(config)
    model.generation_config = GenerationConfig(
        decoder_start_token_id=sot, bos_token_id=eot, eos_token_id=eot, pad_token_id=eot, max_length=448,
        is_multilingual=True, lang_to_id={f"<|{lang}|>": ids[f"<|{lang}|>"] for lang in _WHISPER_LANGUAGES},
        task_to_id={"transcribe": ids["<|transcribe|>"], "translate": ids["<|translate|>"]},
        no_timestamps_token_id=ids["<|notimestamps|>"], prev_sot_token_id=ids["<|startofprev|>"],
        begin_suppress_tokens=[space, eot], suppress_tokens=[], forced_decoder_ids=None,
    )
    model.save_pretrained(folder)
    extractor = WhisperFeatureExtractor(feature_size=128, sampling_rate=SAMPLE_RATE, hop_length=160, chunk_length=30,
                                        n_fft=400)
    WhisperProcessor(feature_extractor=extractor, tokenizer=tok).save_pretrained(folder)


def _llama(folder: Path, texts: list[str], seed: int) -> None:
    """LlamaForCausalLM + a `tokenizer.json` in Llama 3's manner: byte-level BPE, then the
    special tokens `<|begin_of_text|>` (BOS, prepended by the post-processor) and
    `<|end_of_text|>` (EOS); no pad token; tied embeddings as in Llama-3.2-1B."""
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors
    from transformers import GenerationConfig, LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    vocab, merges = _byte_bpe(texts, 400)
    core = Tokenizer(models.BPE(vocab=vocab, merges=merges, ignore_merges=True))
    core.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    core.decoder = decoders.ByteLevel()
    bos, eos = "<|begin_of_text|>", "<|end_of_text|>"
    core.add_special_tokens([bos, eos])
    bos_id, eos_id = core.token_to_id(bos), core.token_to_id(eos)
    core.post_processor = processors.TemplateProcessing(single=f"{bos} $A", pair=f"{bos} $A {bos} $B",
                                                        special_tokens=[(bos, bos_id)])
    tok = PreTrainedTokenizerFast(tokenizer_object=core, bos_token=bos, eos_token=eos, model_max_length=131072,
                                  model_input_names=["input_ids", "attention_mask"])
    config = LlamaConfig(vocab_size=_padded(core.get_vocab_size()), hidden_size=32, intermediate_size=64,
                         num_hidden_layers=1, num_attention_heads=2, num_key_value_heads=1, head_dim=16,
                         max_position_embeddings=131072, rms_norm_eps=1e-5, rope_theta=500_000.0,
                         tie_word_embeddings=True, bos_token_id=bos_id, eos_token_id=eos_id,
                         architectures=["LlamaForCausalLM"])
    torch.manual_seed(seed)
    model = LlamaForCausalLM(config).to(torch.bfloat16)
    model.generation_config = GenerationConfig(bos_token_id=bos_id, eos_token_id=eos_id, do_sample=True,
                                               temperature=0.6, top_p=0.9)
    model.save_pretrained(folder)
    tok.save_pretrained(folder)


def _slamkit_model(seed: int):
    """A Qwen2ForCausalLM over 502 ids (`<PAD>`=0, `<S>`=1 as BOS and EOS, unit u -> u + 2), rope
    theta 10,000, tied embeddings, bf16: the network inside a published Slam model, shrunk."""
    import torch
    from transformers import GenerationConfig, Qwen2Config, Qwen2ForCausalLM

    config = Qwen2Config(vocab_size=N_UNITS + 2, max_position_embeddings=32768, rope_theta=10_000.0,
                         tie_word_embeddings=True, pad_token_id=0, bos_token_id=1, eos_token_id=1,
                         attention_dropout=0.0, use_cache=False, use_sliding_window=False,
                         max_window_layers=_QWEN2_ARCH["num_hidden_layers"], architectures=["Qwen2ForCausalLM"],
                         **_QWEN2_ARCH)
    torch.manual_seed(seed + 1)
    model = Qwen2ForCausalLM(config).to(torch.bfloat16)
    model.generation_config = GenerationConfig(pad_token_id=0, bos_token_id=1, eos_token_id=1)
    return model


def _plain_speech_lm(folder: Path, seed: int) -> None:
    """The same network saved as a plain transformers folder (config.json of a Qwen2ForCausalLM,
    generation_config.json, model.safetensors), as slamlib and other tools save a speech LM."""
    _slamkit_model(seed).save_pretrained(folder)


# config.json of a UnitLM as SlamKit (transformers 4.48) saves slprl/slam_scaled: the wrapper's
# fields, and the base LM's config as from_pretrained("Qwen/Qwen2.5-0.5B", rope_theta=10000,
# torch_dtype="bfloat16", pad/bos/eos 0/1/1) left it. The base config keeps the text LM's vocabulary
# size: the embeddings were resized after the LM was built, on a copy of this config.
_UNITLM_FIELDS = {"architectures": ["UnitLM"], "model_type": "speech_language_model",
                  "base_model_name": "Qwen/Qwen2.5-0.5B", "twist_init": True, "use_cache": False,
                  "trust_remote_code": None, "use_safetensors": None, "rope_theta": 10000,
                  "torch_dtype": "bfloat16", "transformers_version": "4.48.1"}
_QWEN25_FIELDS = {"_name_or_path": "Qwen/Qwen2.5-0.5B", "architectures": ["Qwen2ForCausalLM"], "model_type": "qwen2",
                  "attention_dropout": 0.0, "hidden_act": "silu", "initializer_range": 0.02, "max_position_embeddings": 32768,
                  "rms_norm_eps": 1e-06, "rope_scaling": None, "rope_theta": 10000, "sliding_window": None,
                  "tie_word_embeddings": True, "torch_dtype": "bfloat16", "use_cache": False,
                  "use_sliding_window": False, "vocab_size": 151936, "bos_token_id": 1, "eos_token_id": 1,
                  "pad_token_id": 0}


def _slamkit_checkpoint(folder: Path, seed: int) -> None:
    """A published SlamKit speech LM as on the hub (slprl/slam_scaled): a UnitLM's config.json,
    generation_config.json and model.safetensors with every weight under `lm.` (bf16; the tied
    output layer not stored). No tokenizer and no speech tokenizer beside it: SlamKit knows those
    from its own config. The same network as `_plain_speech_lm` writes for the same seed."""
    from safetensors.torch import save_file

    model = _slamkit_model(seed)
    base = {**_QWEN25_FIELDS, "max_window_layers": _QWEN2_ARCH["num_hidden_layers"], **_QWEN2_ARCH}
    config = {**_UNITLM_FIELDS, "base_config": base, "vocab_size": N_UNITS + 2,
              "max_position_embeddings": base["max_position_embeddings"], "tie_word_embeddings": True}
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.json").write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")
    (folder / "generation_config.json").write_text(json.dumps(
        {"bos_token_id": 1, "eos_token_id": 1, "pad_token_id": 0, "transformers_version": "4.48.1"}, indent=2) + "\n")
    weights = {f"lm.{k}": v.contiguous() for k, v in model.state_dict().items() if k != "lm_head.weight"}
    save_file(weights, folder / "model.safetensors", metadata={"format": "pt"})
