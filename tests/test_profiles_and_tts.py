import numpy as np
import pytest

from slamlib.data.tts import EspeakTTS
from slamlib.profiles import PROFILES, TWIST_KMEANS_500, HubertConfig, LogMelConfig, Voice, get_profile, parse_overrides


def test_slam_profile_has_the_papers_tokenizer():
    slam = get_profile("slam").tokenizer
    assert slam.features == HubertConfig(model="slprl/mhubert-base-25hz", layer=11, pad_samples=40)
    assert slam.n_units == 500 and slam.dedup and slam.kmeans == TWIST_KMEANS_500


def test_tiny_profile_is_offline():
    tiny = get_profile("tiny")
    assert isinstance(tiny.tokenizer.features, LogMelConfig) and tiny.tokenizer.kmeans is None
    assert tiny.speech_sample.source == "espeak" and len(tiny.speech_sample.voices) >= 3
    assert tiny.tokenizer.features.frame_rate == 100 and tiny.tokenizer.n_units == 500
    assert tiny.tokenizer.min_run == 3 and tiny.tokenizer.features.context == 5


def test_overrides_parse_against_the_setting_type():
    profile = get_profile("tiny", parse_overrides(["tokenizer.n_units=64", "tokenizer.features.cmn=false",
                                                   "device=cuda", "tokenizer.kmeans=/x/km.bin"]))
    assert profile.tokenizer.n_units == 64 and profile.tokenizer.features.cmn is False
    assert profile.device == "cuda" and profile.tokenizer.kmeans == "/x/km.bin"
    assert PROFILES["tiny"].tokenizer.n_units == 500  # the named profile itself is unchanged
    voices = get_profile("tiny", {"data.synthetic.story_voice": "en-us@240wpm/p50",
                                  "data.synthetic.read_voices": "en@160wpm/p40, en-us+f3@180wpm/p60"}).data.synthetic
    assert voices.story_voice == Voice("en-us", rate=240, pitch=50)
    assert voices.read_voices == (Voice("en", rate=160, pitch=40), Voice("en-us+f3", rate=180, pitch=60))
    with pytest.raises(ValueError, match="expected a voice like en-us@175wpm/p50"):
        get_profile("tiny", {"data.synthetic.story_voice": "loud"})


def test_override_errors_name_the_setting():
    with pytest.raises(ValueError, match="no setting 'tokenizer.units'"):
        get_profile("tiny", {"tokenizer.units": "3"})
    with pytest.raises(ValueError, match="tokenizer.n_units='many': expected a whole number"):
        get_profile("tiny", {"tokenizer.n_units": "many"})
    with pytest.raises(ValueError, match="must look like key=value"):
        parse_overrides(["tokenizer.n_units"])
    with pytest.raises(ValueError, match="unknown profile 'huge'"):
        get_profile("huge")


def test_profile_serialises():
    assert '"n_units": 500' in get_profile("slam").to_json()


def test_espeak_voices_speak_differently():
    tts = EspeakTTS()
    text = "The quick brown fox jumps over the lazy dog."
    fast = tts.synthesize(text, Voice("en-us", rate=220))
    slow = tts.synthesize(text, Voice("en-us", rate=120))
    female = tts.synthesize(text, Voice("en-us+f3", rate=220))
    assert len(slow) > 1.4 * len(fast)
    assert fast.dtype == np.float32 and np.abs(fast).max() > 0.05  # not silent
    n = min(len(fast), len(female))
    assert not np.allclose(fast[:n], female[:n], atol=1e-3)



def test_espeak_is_deterministic_in_any_order_and_worker():
    """espeak-ng keeps state between utterances; our workers must hide it completely."""
    texts = ["The frog sat very still on a floating leaf.", "Put the apples in the basket."]
    voices = [Voice("en-us+f3", rate=180, pitch=60), Voice("en+m3", rate=150, pitch=35)]
    jobs = [(t, v) for t in texts for v in voices]
    one = EspeakTTS()
    first = [one.synthesize(*job) for job in jobs]
    again = [one.synthesize(*job) for job in reversed(jobs)][::-1]
    parallel = list(EspeakTTS(workers=2).synthesize_many(jobs))
    for a, b, c in zip(first, again, parallel):
        assert np.array_equal(a, b) and np.array_equal(a, c)


def test_espeak_errors():
    with pytest.raises(ValueError, match="no voice 'xx-nope'"):
        EspeakTTS().synthesize("hello", Voice("xx-nope"))
    with pytest.raises(ValueError, match="empty text"):
        EspeakTTS().synthesize("  ")


def test_command_line_strings_take_the_setting_type():
    """`--set` values arrive as strings: tuples from JSON lists, unset optional numbers by their
    annotation, "none" for any optional setting, and a clear error for keys inside tuples."""
    p = get_profile("slam", {"eval.benchmarks": '[["ssc", "/x"]]', "train.corpora": '["a"]', "train.max_steps": "3",
                             "train.budget": "none", "dpo.budget": "10m"})
    assert p.eval.benchmarks == (("ssc", "/x"),) and p.train.corpora == ("a",)
    assert p.train.max_steps == 3 and p.train.budget is None and p.dpo.budget == "10m"
    hash(p)  # still hashable
    with pytest.raises(ValueError, match="expected a whole number"):
        get_profile("slam", {"train.max_steps": "many"})
    with pytest.raises(ValueError, match="no setting 'data.hub.x'"):
        get_profile("slam", {"data.hub.x": "1"})


def test_hub_corpora_and_the_vocoder_are_settable():
    """`data.hub.NAME.FIELD` reaches one corpus of the tuple by its name; the vocoder's files are
    settings of `eval`, the official ones by default."""
    from slamlib.vocoders.hifigan import HIFIGAN_CHECKPOINT_URL

    p = get_profile("slam", {"data.hub.spokenswag.rows": "8", "data.hub.librispeech.dataset": "/data/ls",
                             "data.hub.librispeech.streaming": "true", "eval.hifigan_config": "/v/c.json"})
    hub = {c.name: c for c in p.data.hub}
    assert hub["spokenswag"].rows == 8 and hub["librispeech"].dataset == "/data/ls" and hub["librispeech"].streaming
    assert hub["stinystories"] == next(c for c in get_profile("slam").data.hub if c.name == "stinystories")
    assert [c.name for c in p.data.hub] == ["librispeech", "stinystories", "spokenswag"]  # order kept
    assert p.eval.hifigan_config == "/v/c.json" and p.eval.hifigan_checkpoint == HIFIGAN_CHECKPOINT_URL
    with pytest.raises(ValueError, match="not one of .*librispeech"):
        get_profile("slam", {"data.hub.libri.rows": "8"})
    with pytest.raises(ValueError, match="HubCorpus has"):
        get_profile("slam", {"data.hub.librispeech.row": "8"})
    with pytest.raises(ValueError, match="name a field"):
        get_profile("slam", {"data.hub.librispeech": "8"})
    with pytest.raises(ValueError, match="expected a whole number"):
        get_profile("slam", {"data.hub.spokenswag.rows": "all"})
