"""Stand-ins of the text LM (Qwen2.5), the ASR model (Whisper), the judge LM (Llama) and a published
Slam checkpoint (SlamKit's UnitLM): their config fields, tokenizers and tensor layouts, random weights."""

from __future__ import annotations

import json
from pathlib import Path

from slamlib.standins.speech import SAMPLE_RATE
from slamlib.standins.units import N_UNITS


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
