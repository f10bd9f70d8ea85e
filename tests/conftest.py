"""Shared fixtures. Every test runs offline: hub libraries are put in offline mode and any socket
connection to a non-loopback address fails the test."""

from __future__ import annotations

import ipaddress
import os
import socket

import numpy as np
import pytest

for _flag in ("SLAMLIB_OFFLINE", "HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE"):
    os.environ[_flag] = "1"
os.environ.setdefault("MPLBACKEND", "agg")


def _is_loopback(address) -> bool:
    host = address[0] if isinstance(address, tuple) else address
    if not isinstance(host, str) or host == "localhost":
        return True  # unix sockets and localhost
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a host name: would need DNS, i.e. the network


@pytest.fixture(autouse=True)
def no_network(monkeypatch, tmp_path_factory):
    real_connect = socket.socket.connect

    def guarded(self, address):
        if not _is_loopback(address):
            raise AssertionError(f"test tried to reach the network: {address!r}")
        return real_connect(self, address)

    monkeypatch.setattr(socket.socket, "connect", guarded)
    monkeypatch.setenv("SLAMLIB_CACHE", str(tmp_path_factory.getbasetemp() / "slamlib-cache"))


@pytest.fixture(scope="session")
def speech():
    """A few seconds of espeak speech per voice: a list of (text, voice, waveform)."""
    from slamlib.data.tts import EspeakTTS
    from slamlib.profiles import TINY_VOICES

    tts = EspeakTTS()
    texts = ["The small boat drifted toward the shore.", "Please close the window.",
             "Seven ducks swam across the muddy pond.", "A bright kite flew above the park."]
    return [(t, v, tts.synthesize(t, v)) for t, v in zip(texts, TINY_VOICES)]


@pytest.fixture(scope="module")
def speech_tokenizer(speech):
    """The tiny profile's speech tokenizer with 16 units, fitted on `speech` (one per test module)."""
    from slamlib.profiles import get_profile
    from slamlib.tokenization.speech_tokenizer import build_speech_tokenizer

    return build_speech_tokenizer(get_profile("tiny", {"tokenizer.n_units": 16}).tokenizer,
                                  fit_audio=[w for _, _, w in speech], device="cpu")


def tiny_arch(**changes):
    """The tests' speech LM architecture: 2 layers, hidden size 32, 4 heads (2 for keys and values)."""
    from slamlib.profiles import ArchConfig

    settings = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
                    num_key_value_heads=2)
    return ArchConfig(**{**settings, **changes})


def tiny_hubert_config(**overrides):
    """A HuBERT with mHuBERT-25Hz's conv strides (640 samples per frame) and tiny widths."""
    from transformers import HubertConfig

    settings = dict(
        hidden_size=32, num_hidden_layers=3, num_attention_heads=2, intermediate_size=64,
        conv_dim=(32,) * 7, conv_stride=(5, 2, 2, 2, 2, 2, 4), conv_kernel=(10, 3, 3, 3, 3, 2, 4),
        num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=2, feat_extract_norm="group",
        do_stable_layer_norm=False,
    )
    settings.update(overrides)
    return HubertConfig(**settings)


@pytest.fixture(scope="session")
def tiny_hubert_dir(tmp_path_factory):
    """A random tiny HubertModel saved with save_pretrained, the way a hub snapshot looks."""
    import torch
    from transformers import HubertModel

    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("tiny-hubert")
    HubertModel(tiny_hubert_config()).save_pretrained(path)
    return path


@pytest.fixture(scope="session")
def standins(tmp_path_factory):
    """The slam profile's hub assets in their formats, tiny (`slamlib.standins`), once per session."""
    from slamlib.standins import build_standins

    return build_standins(tmp_path_factory.mktemp("standins"), seed=0)


class competing_load:
    """A context in which `processes` busy loops compete for the CPU (as another job on the machine would)."""

    def __init__(self, processes: int = 2):
        self.processes = processes

    def __enter__(self):
        import subprocess
        import sys

        self.loops = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(self.processes)]
        return self

    def __exit__(self, *exc):
        for loop in self.loops:
            loop.kill()
            loop.wait()


@pytest.fixture
def rng():
    return np.random.default_rng(0)


class TutorialRun:
    """The tiny tutorial as a new user runs it (`python -m slamlib run --profile tiny`), once per
    test session: the recipe test and the notebook tests read the same run folder."""

    def __init__(self, root, result):
        self.root, self.result = root, result

    def metrics(self, step: str | None = None) -> dict:
        import json

        path = self.root / ("metrics.json" if step is None else f"metrics/{step}.json")
        return json.loads(path.read_text())

    def executed(self, notebook: str):
        return self.root / "notebooks" / notebook


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory):
    import subprocess
    import sys
    from pathlib import Path

    root = tmp_path_factory.mktemp("tutorial") / "run"
    env = {**os.environ, "SLAMLIB_CACHE": str(tmp_path_factory.getbasetemp() / "slamlib-cache")}
    result = subprocess.run([sys.executable, "-m", "slamlib", "run", "--profile", "tiny", "--out", str(root)],
                            cwd=Path(__file__).resolve().parent.parent, env=env, capture_output=True, text=True,
                            timeout=40 * 60)
    if result.returncode != 0:
        pytest.fail("the tiny tutorial failed:\n" + result.stdout[-3000:] + result.stderr[-3000:])
    return TutorialRun(root, result)
