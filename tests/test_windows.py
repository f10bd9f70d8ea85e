"""Long audio in bounded memory: piecewise reading and window-by-window encoding."""

import numpy as np
import pytest
import torch

from slamlib.audio import SAMPLE_RATE, AudioError, write_audio
from slamlib.tokenization.windows import LongAudio, Span, window_cores, windowed_agreement

from conftest import tiny_hubert_config


@pytest.fixture(scope="module")
def long_wav(speech):
    """About 40 s of speech: the fixture's sentences, each followed by a quarter second of silence, four times."""
    pieces = [np.concatenate([w, np.zeros(4000, np.float32)]) for _, _, w in speech] * 4
    return np.concatenate(pieces)


def test_long_audio_reads_spans_of_files_by_seeking(tmp_path):
    rng = np.random.default_rng(0)
    wav = (rng.standard_normal(50_000) * 0.1).astype(np.float32)
    path = write_audio(tmp_path / "a.wav", wav)
    stored = np.round(np.clip(wav, -1, 1) * 32767) / 32767  # 16-bit PCM
    audio = LongAudio([Span(path, 1000, 3000), Span(path, 40_000, 41_000)])
    assert len(audio) == 3000
    got = audio.read(-5, 3005)
    np.testing.assert_allclose(got[:5], 0)
    np.testing.assert_allclose(got[5:2005], stored[1000:3000], atol=1e-4)
    np.testing.assert_allclose(got[2005:3005], stored[40_000:41_000], atol=1e-4)
    np.testing.assert_allclose(got[3005:], 0)
    with pytest.raises(AudioError, match="before sample 60000"):
        LongAudio([Span(path, 49_000, 60_000)]).read(0, 11_000)
    write_audio(tmp_path / "b.wav", wav, 8000)
    with pytest.raises(AudioError, match="8000 Hz"):
        LongAudio.file(tmp_path / "b.wav")


def test_window_cores_cover_every_frame_once():
    cores = window_cores(1001, 250)
    assert cores[0] == (0, 250) and cores[-1] == (1000, 1001)
    assert np.concatenate([np.arange(a, b) for a, b in cores]).tolist() == list(range(1001))


@pytest.mark.parametrize("cmn", [False, True])
def test_log_mel_windows_give_the_whole_file_units_exactly(speech, long_wav, cmn):
    """The STFT frames read only their own samples and the mean of cmn comes from a first pass,
    so every frame's unit equals the whole file's, whatever the window; dedup runs across seams."""
    from slamlib.profiles import get_profile
    from slamlib.tokenization.speech_tokenizer import build_speech_tokenizer

    config = get_profile("tiny", {"tokenizer.n_units": 32, "tokenizer.features.cmn": cmn}).tokenizer
    tokenizer = build_speech_tokenizer(config, fit_audio=[w for _, _, w in speech], device="cpu")
    whole = tokenizer.frame_units([long_wav])[0]
    windowed = tokenizer.frame_units_long(LongAudio.of(long_wav), 7.0, 1.0)
    np.testing.assert_array_equal(windowed, whole)
    assert windowed_agreement(tokenizer, [long_wav], 7.0, 0.0)["agreement"] == 1.0

    tokenizer.window_seconds, tokenizer.window_overlap_seconds = 5.0, 1.0
    assert tokenizer.is_long(len(long_wav))
    short, long = tokenizer.tokenize([long_wav[:SAMPLE_RATE], long_wav])
    from slamlib.tokenization.units import dedup

    units, durations = dedup(whole, tokenizer.min_run)
    np.testing.assert_array_equal(long.units, units)
    np.testing.assert_array_equal(long.durations, durations)
    assert long.seconds == len(long_wav) / SAMPLE_RATE and short.seconds == 1.0


def test_hubert_windows_keep_the_whole_file_convolutions(long_wav):
    """With the whole file inside one window the features equal whole-file encoding (the
    GroupNorm statistics from the first pass equal the file's own); with short windows, only
    attention sees less, and the units still agree on at least 99% of frames."""
    from transformers import HubertModel

    from slamlib.profiles import HubertConfig
    from slamlib.tokenization.features import HubertExtractor
    from slamlib.tokenization.kmeans import fit_kmeans
    from slamlib.tokenization.speech_tokenizer import SpeechTokenizer

    torch.manual_seed(0)
    model = HubertModel(tiny_hubert_config(num_hidden_layers=11)).eval()
    for normalize in (False, True):
        extractor = HubertExtractor(HubertConfig(model="random", normalize=normalize), device="cpu", model=model)
        audio = LongAudio.of(long_wav)
        whole = extractor([long_wav])[0]
        total = extractor.n_frames(len(long_wav))
        assert total == len(whole)
        stats = extractor.file_stats(audio, chunk_seconds=3.0)  # several chunks
        inside = extractor.frames_in(audio, 100, 300, margin=total, stats=stats)
        torch.testing.assert_close(inside, whole[100:300], atol=2e-4, rtol=1e-4)
    kmeans = fit_kmeans(whole, 50, seed=0, device=torch.device("cpu"))
    tokenizer = SpeechTokenizer(extractor, kmeans)
    result = windowed_agreement(tokenizer, [long_wav], 10.0, 4.0)
    assert result["frames"] == total
    assert result["agreement"] >= 0.99


def test_windows_are_checked():
    with pytest.raises(ValueError, match="window_overlap_seconds=60.0 must be at least 0 and below"):
        from slamlib.tokenization.windows import window_frames

        window_frames(60.0, 60.0, 25.0)
