"""The tiny profile's pretrained text LM: what TWIST initialises from when no hub is reachable.

The paper TWIST-initialises from Qwen2.5-0.5B. Offline there is none, so the tiny profile trains a
text LM of the same family (Qwen2) and the same shape as its speech LM on the tiny world's training
texts (stories, read sentences, preference prompts and chosen endings; never a held-out text), for
a minute or two, with a word-level vocabulary. It is saved as an ordinary transformers model with
its tokenizer, so `init_speech_lm` treats it exactly as it treats a hub model.

`prepare_initial_models` is notebook 02 in one call: this text LM (or the profile's hub model),
then one speech LM per initialisation. It lives here, above the trainer and `slamlib.model`,
because it calls both; `slamlib.model` itself knows nothing of how a text LM is made.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from pathlib import Path
from typing import Iterable

from slamlib import reuse
from slamlib.metrics import word_tokens
from slamlib.model import init_speech_lm, save_speech_lm
from slamlib.profiles import TextLMConfig

SPECIAL = ("<pad>", "<s>", "<unk>")  # ids 0, 1, 2: pad, BOS/EOS (as the unit vocabulary), unknown


def word_vocabulary(texts: Iterable[str]) -> dict[str, int]:
    """Lower-cased words and punctuation of the texts, most frequent first, after the specials."""
    from collections import Counter

    counts = Counter(t.lower() for text in texts for t in word_tokens(text))
    words = sorted(counts, key=lambda w: (-counts[w], w))
    return {**{s: i for i, s in enumerate(SPECIAL)}, **{w: i + len(SPECIAL) for i, w in enumerate(words)}}


def char_vocabulary(texts: Iterable[str]) -> dict[str, int]:
    """The lower-cased characters of the texts (spaces and punctuation included), most frequent
    first, after the specials."""
    from collections import Counter

    counts = Counter(c for text in texts for c in text.lower() if c != "\n")
    chars = sorted(counts, key=lambda c: (-counts[c], c))
    return {**{s: i for i, s in enumerate(SPECIAL)}, **{c: i + len(SPECIAL) for i, c in enumerate(chars)}}


def _lowercase_tokenizer(vocab: dict[str, int], pre_tokenizer, decoder=None):
    """A PreTrainedTokenizerFast over `vocab`: lower-cased, split by `pre_tokenizer`, unknown -> <unk>."""
    from tokenizers import Tokenizer, models, normalizers
    from transformers import PreTrainedTokenizerFast

    core = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    core.normalizer = normalizers.Lowercase()
    core.pre_tokenizer = pre_tokenizer
    if decoder is not None:
        core.decoder = decoder
    return PreTrainedTokenizerFast(tokenizer_object=core, pad_token="<pad>", bos_token="<s>", eos_token="<s>",
                                   unk_token="<unk>")


def char_tokenizer(vocab: dict[str, int]):
    """One token per character (lower-cased; unknown -> <unk>)."""
    from tokenizers import Regex, decoders, pre_tokenizers

    return _lowercase_tokenizer(vocab, pre_tokenizers.Split(Regex("."), "isolated"), decoders.Fuse())


def word_tokenizer(vocab: dict[str, int]):
    """One token per word or punctuation mark (lower-cased; unknown words -> <unk>)."""
    from tokenizers import Regex, pre_tokenizers

    return _lowercase_tokenizer(vocab, pre_tokenizers.Sequence(
        [pre_tokenizers.WhitespaceSplit(), pre_tokenizers.Split(Regex(r"\w+(?:'\w+)?|[^\w\s]"), "isolated")]))


VOCABULARIES = {"word": (word_vocabulary, word_tokenizer), "char": (char_vocabulary, char_tokenizer)}


def training_texts(profile) -> list[str]:
    """The tiny world's training texts (the same seed gives the same texts as notebook 03 speaks)."""
    from slamlib.data.synth import make_texts

    texts = make_texts(profile.data.synthetic, profile.seed)
    return ([s.text for s in texts.stories] + texts.read_speech
            + [f"{p['prompt_text']} {p['chosen_text']}" for p in texts.preference])


def train_text_lm(profile, out_dir: str | os.PathLike, texts: list[str] | None = None, *, progress: bool = True,
                  callbacks=()) -> dict:
    """Train the profile's text LM into out_dir (reusing a finished one with the same settings)."""
    import torch
    from transformers import Qwen2Config, Qwen2ForCausalLM

    from slamlib.train.packing import Documents
    from slamlib.train.trainer import Trainer

    out = Path(out_dir)
    cfg, arch = profile.model.text_lm, profile.model.architecture
    texts = texts if texts is not None else training_texts(profile)
    if cfg.vocabulary not in VOCABULARIES:
        raise ValueError(f"model.text_lm.vocabulary={cfg.vocabulary!r}: use one of {sorted(VOCABULARIES)}")
    train_cfg = dataclasses.replace(
        profile.train, context=cfg.context, batch_size=cfg.batch_size, grad_accum=1, lr=cfg.lr, min_lr=cfg.min_lr,
        budget=f"{cfg.seconds}s" if cfg.seconds else None, tokens=None, max_steps=None if cfg.seconds else cfg.steps,
        eval_every=10**9, save_every=10**9, trackers=())
    made_with = {**reuse.settings(cfg, "model.text_lm."), **reuse.settings(arch, "model.architecture."),
                 **reuse.settings(train_cfg, "train.", leave_out=reuse.TRAIN_NOT_IN_RESULT), "seed": profile.seed,
                 "texts": hashlib.sha256("\n".join(texts).encode()).hexdigest()[:16]}
    done = out / "text_lm.json"
    if done.exists() and reuse.matches(out, made_with, what="text LM", redo="training it again"):
        return json.loads(done.read_text())["summary"]
    reuse.forget(out, "text_lm.json", "checkpoints")
    make_vocabulary, make_tokenizer = VOCABULARIES[cfg.vocabulary]
    vocab = make_vocabulary(texts)
    tokenizer = make_tokenizer(vocab)
    docs = Documents.from_lists([[1, *ids, 1] for ids in tokenizer(texts, add_special_tokens=False)["input_ids"]])
    torch.manual_seed(profile.seed)
    config = Qwen2Config(
        vocab_size=len(vocab), hidden_size=arch.hidden_size, intermediate_size=arch.intermediate_size,
        num_hidden_layers=arch.num_hidden_layers, num_attention_heads=arch.num_attention_heads,
        num_key_value_heads=arch.num_key_value_heads, max_position_embeddings=arch.max_position_embeddings,
        rms_norm_eps=arch.rms_norm_eps, tie_word_embeddings=arch.tie_word_embeddings, use_cache=False,
        pad_token_id=0, bos_token_id=1, eos_token_id=1,
    )
    model = Qwen2ForCausalLM(config)
    train_docs, valid_docs = docs.split(0.02, seed=profile.seed)

    def save(model, directory):
        model.save_pretrained(directory)
        tokenizer.save_pretrained(directory)

    trainer = Trainer(model, train_docs, train_cfg, out, valid_docs=valid_docs, seed=profile.seed,
                      callbacks=callbacks, save_model=save)
    summary = trainer.fit(resume=False, progress=progress)
    summary.update(vocabulary=len(vocab), documents=len(docs), text_tokens=docs.n_tokens)
    done.write_text(json.dumps({"summary": summary}, indent=2) + "\n")
    reuse.record(out, made_with)
    return summary


def prepare_base_lm(profile, run, *, progress: bool = True, callbacks=()) -> str:
    """The text LM to TWIST-initialise from: the profile's hub model (or local path), or, for a
    profile that trains its own (tiny), that one, trained into RUN_DIR/text_lm if needed."""
    if profile.model.text_lm is None:
        return profile.model.base
    out = run.folder("text_lm")
    train_text_lm(profile, out, progress=progress, callbacks=callbacks)
    return str(out)


# the text LM's own settings reach an initial model through the text LM's record (`base_content`)
_NOT_IN_INIT = tuple(f"text_lm.{f.name}" for f in dataclasses.fields(TextLMConfig))


def prepare_initial_models(profile, run, speech_tokenizer, *, inits=("twist", "random"), progress: bool = True,
                           callbacks=()) -> dict[str, Path]:
    """Notebook 02 in one call: the text LM to start from (trained first, for a profile that has
    none on a hub), then one saved speech LM per initialisation, in RUN_DIR/models/init_<name>."""
    base = prepare_base_lm(profile, run, progress=progress, callbacks=callbacks)
    out = {}
    for init in inits:
        directory = run.root / "models" / f"init_{init}"
        made_with = {**reuse.settings(profile.model, "model.", leave_out=_NOT_IN_INIT), "init": init,
                     "base": str(base), "base_content": reuse.content_key(base), "seed": profile.seed,
                     "speech_tokenizer": speech_tokenizer.fingerprint()}
        if not ((directory / "config.json").exists()
                and reuse.matches(directory, made_with, what=f"models/init_{init}", redo="building it again")):
            reuse.forget(directory)
            model = init_speech_lm(profile.model, speech_tokenizer.n_units, init=init, base=base, seed=profile.seed)
            save_speech_lm(model, directory, speech_tokenizer)
            (directory / "init.json").write_text(json.dumps({"init": init, "base": str(base)}, indent=2) + "\n")
            reuse.record(directory, made_with)
        out[init] = directory
    return out


def text_continuation(base: str, prompt: str, max_new_tokens: int = 12) -> str:
    """The text LM's greedy continuation of a prompt, for a look at what it learned."""
    import torch
    from transformers import AutoModelForCausalLM, PreTrainedTokenizerFast

    from slamlib import hub

    path = hub.resolve_model(str(base), what="text LM")
    tokenizer = PreTrainedTokenizerFast.from_pretrained(path)  # not AutoTokenizer: see slamlib.tokenization.units
    model = AutoModelForCausalLM.from_pretrained(path).eval()
    ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
    if tokenizer.bos_token_id is not None:
        ids = [tokenizer.bos_token_id, *ids]
    with torch.no_grad():
        out = model.generate(torch.tensor([ids]), max_new_tokens=max_new_tokens, do_sample=False,
                             pad_token_id=tokenizer.pad_token_id or tokenizer.eos_token_id)
    return f"{prompt} [{tokenizer.decode(out[0, len(ids):], skip_special_tokens=True).strip()}]"
