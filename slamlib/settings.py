"""The recipe's settings: one frozen dataclass per stage, grouped in a `Profile`.

Each field says what it sets; `slamlib.profiles` fills them in for the two profiles (`tiny`,
`slam`), `slamlib.overrides` changes them by dotted key (`--set`), and `slamlib.checks` checks
every value where it enters. `flat_settings` lists a group as the dotted keys `--set` takes.

Not here: the profiles' values (`slamlib.profiles`).
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass

from slamlib.audio import SAMPLE_RATE

# The unit HiFi-GAN released with the official mHuBERT-25Hz k-means (textless CodeHiFiGAN, one LJ
# speaker, with a duration predictor), which speaks its 500 units at 25 Hz: evaluation's default vocoder.
TWIST_SPEECH_TOKENIZER_URL = "https://dl.fbaipublicfiles.com/textless_nlp/twist/speech_tokenizer/"
HIFIGAN_CHECKPOINT_URL = TWIST_SPEECH_TOKENIZER_URL + "hifigan_lj_mhubert_base_25hz.pt"
HIFIGAN_CONFIG_URL = TWIST_SPEECH_TOKENIZER_URL + "hifigan_lj_mhubert_base_25hz_config.json"


# --- features and voices (the settings of slamlib.tokenization.features and slamlib.data.tts) ---

@dataclass(frozen=True)
class LogMelConfig:
    """Log-mel features. `frame_rate` is the rate after stacking `stack` consecutive frames, so
    the STFT hop is sample_rate / (frame_rate * stack) samples (160 = 10 ms for the defaults)."""

    n_mels: int = 80
    frame_rate: float = 50.0
    stack: int = 2
    win_ms: float = 25.0
    f_min: float = 20.0
    f_max: float = 7600.0
    floor: float = 1e-6  # added to mel power before the log; keeps digital silence finite
    cmn: bool = True  # subtract each utterance's mean per mel bin: less voice, more phone
    context: int = 1  # frames (after stacking) seen by each frame, centred; the rate stays the same

    kind = "logmel"

    @property
    def hop(self) -> int:
        hop = SAMPLE_RATE / (self.frame_rate * self.stack)
        if abs(hop - round(hop)) > 1e-9:
            raise ValueError(
                f"frame_rate={self.frame_rate} with stack={self.stack} gives a hop of {hop} samples;"
                " choose values whose hop is a whole number of samples"
            )
        return int(round(hop))

    @property
    def win(self) -> int:
        return int(round(SAMPLE_RATE * self.win_ms / 1000))

    @property
    def n_fft(self) -> int:
        return 1 << (self.win - 1).bit_length()

    @property
    def dim(self) -> int:
        return self.n_mels * self.stack * self.context


@dataclass(frozen=True)
class HubertConfig:
    """A transformers HubertModel and the layer whose hidden states become features.

    `pad_samples` zeros are added on both sides of every waveform before the encoder, as SlamKit
    does for mHuBERT-25Hz, so that units line up with the published k-means and vocoder."""

    model: str = "slprl/mhubert-base-25hz"
    layer: int = 11
    pad_samples: int = 40
    normalize: bool = False  # per-utterance zero mean / unit variance (not used by mHuBERT-25Hz)
    # "fp32" on every device (SlamKit's units, which the published models were trained on) or "bf16":
    # autocast where the device has it, faster, but it moves some frames to another unit (docs/benchmarks.md,
    # "Units under bf16"). "auto", the old default, is read as "fp32".
    precision: str = "fp32"

    kind = "hubert"


@dataclass(frozen=True)
class Voice:
    name: str = "en-us"
    rate: int = 175  # words per minute (espeak's range is about 80-450)
    pitch: int = 50  # 0-100

    def __str__(self) -> str:
        return f"{self.name}@{self.rate}wpm/p{self.pitch}"


# --- the stages' settings ----------------------------------------------------------------------

@dataclass(frozen=True)
class TokenizerConfig:
    """Speech -> units: features, k-means, dedup."""

    features: LogMelConfig | HubertConfig
    n_units: int
    kmeans: str | None = None  # pretrained k-means (URL or path); None: fit on the profile's speech
    # a pickled k-means (sklearn/joblib) is loaded only when it is the official file (known by its SHA-256,
    # downloaded or a local copy), or its SHA-256 is this, or with trust_pickle (loading a pickle runs the
    # code it holds); our .npy centroids need neither
    kmeans_sha256: str | None = None
    trust_pickle: bool = False
    dedup: bool = True
    min_run: int = 1  # frames a unit must last to count (shorter flickers are dropped before dedup)
    fit_seconds: float = 900.0  # audio used to fit k-means when the profile fits one
    batch_seconds: float = 160.0  # padded audio per extractor batch
    # audio longer than a window is encoded window by window (peak memory that of one window), each
    # window keeping its middle: windows share `window_overlap_seconds`, half of it dropped on each side
    window_seconds: float = 60.0
    window_overlap_seconds: float = 5.0  # from the agreement table in docs/benchmarks.md


@dataclass(frozen=True)
class SpeechSampleConfig:
    """The speech notebook 01 tokenizes (and fits k-means on, when the profile fits one).

    source "espeak": `texts` read by `voices` (offline). Otherwise a dataset id or local path
    whose `audio_column` holds encoded audio."""

    source: str = "espeak"
    texts: str = "data/sentences.txt"  # relative to the repository root
    voices: tuple[Voice, ...] = ()
    n_utterances: int = 300
    dataset_config: str | None = None
    split: str = "validation"
    audio_column: str = "audio"
    text_column: str | None = "text"


@dataclass(frozen=True)
class SynthConfig:
    """The tiny world's synthetic corpora (`slamlib.data.synth`): how many of each, and who reads them."""

    n_stories: int = 4000  # single-voice spoken stories (sTinyStories stand-in)
    n_read: int = 2000  # multi-voice read utterances (LibriSpeech stand-in)
    n_preference: int = 2000  # DPO pairs (SpokenSwag stand-in)
    n_heldout_preference: int = 1000  # pairs like those, never trained on
    n_test_stories: int = 1000  # tStoryCloze- and sStoryCloze-style pairs
    n_sblimp: int = 1000  # sBLIMP-style minimal pairs
    n_swuggy: int = 150  # sWUGGY-style words against non-words (and the OOV words; 0 leaves the test out)
    action_prob: float = 0.5  # chance that a story has the optional action sentence
    home_prob: float = 0.3  # chance that the introduction says where the character lives
    feeling_prob: float = 0.7  # chance that the event sentence says how the character felt
    read_activity_fraction: float = 0.3  # read utterances that are activity steps (the pairs' kind of text)
    story_voice: Voice = Voice("en-us", rate=175, pitch=50)
    read_voices: tuple[Voice, ...] = ()
    preference_voices: tuple[Voice, ...] = ()
    sblimp_voices: tuple[Voice, ...] = ()
    max_auto_bleu: float = 0.3  # SpokenSwag's filter: drop pairs whose prompt + chosen repeats itself
    shard_size: int = 500
    workers: int = 2  # espeak processes


@dataclass(frozen=True)
class HubCorpus:
    """A real corpus from the hub (or a local copy): which rows, and where audio and text are."""

    name: str  # the folder it is written to: units/<name>
    dataset: str
    kind: str = "speech"  # "speech": one audio column; "preference": prompt/chosen/rejected
    config: str | None = None
    split: str = "train"
    rows: int | None = None  # None: all rows
    shards: int | None = None  # only the first N parquet shards (None: all)
    streaming: bool = False
    audio_column: str = "audio"
    id_column: str | None = None
    keep_columns: tuple[str, ...] = ("text",)
    # Preference corpora only: keep a pair when the Auto-BLEU (SlamKit's, NLTK word bigrams) of its
    # prompt_text + " " + chosen_text is below this (strictly); None keeps every pair.
    max_auto_bleu: float | None = None


@dataclass(frozen=True)
class DataConfig:
    """Training and evaluation data: synthetic (tiny) and/or real corpora from the hub (slam)."""

    synthetic: SynthConfig | None = None
    hub: tuple[HubCorpus, ...] = ()
    # a local Libri-Light folder (its release layout: SUBSET/SPEAKER/BOOK/FILE.flac + FILE.json), cut into
    # utterances by its voice activity (slamlib.data.librilight) and pretrained on with the other corpora
    librilight: str | None = None
    # voiced seconds an utterance gathers: Libri-Light's cut_by_vad.py default, and about one 1024-unit context
    librilight_target_seconds: float = 60.0

    def training_corpora(self, corpora: tuple[str, ...]) -> tuple[str, ...]:
        """The units folders pretraining reads: `train.corpora`, and Libri-Light when a path is given."""
        return corpora + ("librilight",) if self.librilight and "librilight" not in corpora else corpora


@dataclass(frozen=True)
class ArchConfig:
    """A Qwen2-family architecture, known offline (dry runs, random init, the tiny text LM)."""

    hidden_size: int
    intermediate_size: int
    num_hidden_layers: int
    num_attention_heads: int
    num_key_value_heads: int
    vocab_size: int = 151_936  # the text LM's (Qwen2.5's); the speech LM has units + 2
    max_position_embeddings: int = 32_768
    rms_norm_eps: float = 1e-6
    tie_word_embeddings: bool = True


@dataclass(frozen=True)
class TextLMConfig:
    """Offline there is no pretrained text LM: the tiny profile trains one on its story texts
    (word-level vocabulary, the same architecture as the speech LM) and TWIST-inits from that."""

    steps: int = 120  # training steps
    seconds: float | None = None  # a wall-clock budget instead of a number of steps
    vocabulary: str = "word"  # "word": lower-cased words; "char": characters (spaces included)
    context: int = 256
    batch_size: int = 32
    lr: float = 3e-3
    min_lr: float = 1e-4


@dataclass(frozen=True)
class ModelConfig:
    base: str | None  # the text LM to TWIST-initialise from: hub id or local path (tiny: trained here)
    architecture: ArchConfig
    text_lm: TextLMConfig | None = None
    init: str = "twist"  # or "random": the paper's ablation, same architecture
    unit_embeddings: str = "normal"  # fresh N(0, 0.02) rows; "text_rows": the base's first rows (SlamKit)
    # which decoder parts TWIST copies from the text LM: ("all",) as in the paper, or some of
    # "attention", "mlp", "norms"; the rest keep the random twin's weights
    twist_parts: tuple[str, ...] = ("all",)
    rope_theta: float = 10_000.0


@dataclass(frozen=True)
class TrainConfig:
    """Packed next-unit pretraining."""

    corpora: tuple[str, ...]  # units folders under RUN_DIR/units
    context: int = 1024
    batch_size: int = 8  # sequences per device per micro-batch
    # "rows": a micro-batch is batch_size rows of `context` tokens, documents packed into them;
    # "examples": batch_size documents (each at most `context`) end to end, unpadded, as SlamKit
    # packs with DataCollatorWithFlattening: fewer tokens a step when documents are short
    packing: str = "rows"
    grad_accum: int = 16
    lr: float = 1e-3
    min_lr: float = 5e-5
    warmup_ratio: float = 0.01
    min_warmup_steps: int = 100
    weight_decay: float = 0.0
    adam_betas: tuple[float, float] = (0.9, 0.999)
    adam_eps: float = 1e-8
    max_grad_norm: float = 0.5
    precision: str = "bf16"  # the paper's mixed precision (fp16 with loss scaling below cc 8.0, slamlib.device) or "fp32"
    # torch.compile the training forward and backward (falls back to eager if compiling fails).
    # Off by default: on the tiny CPU model it costs about 20 s of compiling for 17% faster steps
    # (`bench train --compile`), which a budget of a few minutes does not earn back.
    compile: bool = False
    prefetch: int = 2  # steps whose batches are collated ahead, in a background thread (0: in the loop)
    # attention while training: "auto" is per-document (slamlib.train.attention's varlen): FlashAttention
    # on a CUDA GPU, documents grouped by length on a CPU; or "varlen", "sdpa", "eager", "flash_attention_2"
    attention: str = "auto"
    # recompute each layer's activations in the backward pass: about a third more compute for a
    # fraction of the activation memory (for cards where the batch does not fit otherwise)
    gradient_checkpointing: bool = False
    budget: str | None = "23h30m"  # wall clock for this stage; or None with tokens / max_steps
    tokens: int | None = None
    max_steps: int | None = None
    probe_steps: int = 20  # steps timed before training to turn the budget into max_steps
    valid_fraction: float = 0.005
    eval_every: int = 500
    save_every: int = 500
    log_every: int = 10
    trackers: tuple[str, ...] = ()  # accelerate trackers, e.g. ("tensorboard",)


@dataclass(frozen=True)
class PreferenceConfig:
    """DPO on spoken preference pairs (`slamlib.dpo`)."""

    corpus: str = "preference/train"  # units folder under RUN_DIR/units
    heldout: str | None = "preference/heldout"  # evaluated during training when present
    beta: float = 0.1
    lr: float = 5e-5
    scheduler: str = "inverse_sqrt"
    warmup_steps: int = 0
    batch_size: int = 4  # pairs per device per micro-batch
    grad_accum: int = 16
    max_length: int = 1024  # prompt + completion, in tokens
    sft_weight: float = 0.0  # weight of an added likelihood term on the chosen continuation (0: plain DPO)
    max_grad_norm: float = 1.0
    epochs: float = 1.0  # how many passes when no step count is given
    max_steps: int | None = None
    budget: str | None = "30m"  # stop when time is up (inverse-sqrt has no end to cut short)
    precompute_ref: bool = False  # reference log-probs computed once instead of a frozen copy
    precision: str = "bf16"
    log_every: int = 10
    eval_every: int = 100
    eval_pairs: int = 256  # held-out pairs scored at each evaluation during training


@dataclass(frozen=True)
class GenerationConfig:
    """Sampling for speech continuations (SlamKit's GenPPL settings)."""

    temperature: float = 0.8
    top_k: int = 25
    max_new_tokens: int = 150
    repetition_penalty: float = 1.1
    prompt_seconds: float = 3.0


@dataclass(frozen=True)
class EvalConfig:
    """Evaluation (`slamlib.evaluate`, notebook 06)."""

    # (name, path): sblimp, ssc, tsc, salmon; a relative path is inside the run folder
    benchmarks: tuple[tuple[str, str], ...] = ()
    score: str = "mean"  # mean log-likelihood per token, or "sum"
    batch_tokens: int = 8192
    preference_heldout: str | None = None  # units folder of held-out preference pairs
    generation: GenerationConfig = GenerationConfig()
    n_generations: int = 1000  # GenPPL prompts: the first correct sStoryCloze files
    genppl: bool = True  # needs an ASR model and a judge LM (hub assets)
    asr_model: str = "openai/whisper-large-v3-turbo"
    judge_model: str = "meta-llama/Llama-3.2-1B"
    # the unit HiFi-GAN that vocodes HuBERT units (URLs or local paths; log-mel units use Griffin-Lim)
    hifigan_checkpoint: str = HIFIGAN_CHECKPOINT_URL
    hifigan_config: str = HIFIGAN_CONFIG_URL


@dataclass(frozen=True)
class Profile:
    name: str
    description: str
    tokenizer: TokenizerConfig
    speech_sample: SpeechSampleConfig
    data: DataConfig = DataConfig()
    model: ModelConfig | None = None
    train: TrainConfig | None = None
    dpo: PreferenceConfig | None = None
    eval: EvalConfig = EvalConfig()
    device: str = "auto"
    seed: int = 0

    def to_dict(self) -> dict:
        return _plain(dataclasses.asdict(self))

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)


def flat_settings(obj, prefix: str = "") -> dict[str, object]:
    """Dotted keys -> values of a config dataclass (the keys `--set` takes); voices as text.

    >>> flat_settings(TokenizerConfig(LogMelConfig(), n_units=500))["features.frame_rate"]
    50.0
    """
    out = {}
    for f in dataclasses.fields(obj):
        value, key = getattr(obj, f.name), f"{prefix}{f.name}"
        if dataclasses.is_dataclass(value) and not isinstance(value, Voice):
            out.update(flat_settings(value, f"{key}."))
        elif isinstance(value, tuple) and value and dataclasses.is_dataclass(value[0]):
            out[key] = ", ".join(str(v) if isinstance(v, Voice) else getattr(v, "name", str(v)) for v in value)
        else:
            out[key] = str(value) if isinstance(value, Voice) else value
    return out


def _plain(value):
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value
