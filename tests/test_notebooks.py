"""Notebooks executed with papermill on the tiny profile, asserting on the metrics they write.

The notebooks are those of the session's one tutorial run (the `tiny_run` fixture, which the
recipe test reads too): the run a new user makes, not a second, smaller one."""

import json
import math

import nbformat
import pytest

from slamlib.pipeline import NOTEBOOK_DIR, NotebookFailed, run_notebook, run_tutorial
from slamlib.profiles import get_profile
from slamlib.tokenization.speech_tokenizer import SpeechTokenizer

pytestmark = pytest.mark.notebook


def assert_clean(executed):
    nb = nbformat.read(executed, as_version=4)
    outputs = [o for c in nb.cells for o in c.get("outputs", [])]
    assert not [o for o in outputs if o.get("output_type") == "error"]
    # batch runs are quiet: no progress-bar widgets saved in the executed copy
    assert not [o for o in outputs if "application/vnd.jupyter.widget-view+json" in o.get("data", {})]


P = get_profile("tiny")


@pytest.mark.slow
def test_notebook_01_tokenization(tiny_run):
    m = tiny_run.metrics("01_tokenization")
    assert m["profile"] == "tiny" and m["utterances"] == P.speech_sample.n_utterances and m["bad_audio"] == 0
    assert m["n_units"] == 500 and m["vocab_size"] == 502 and m["frame_rate"] == 100
    assert 5 < m["units_per_second"] < 14  # 100 frames/s before runs under 3 frames are dropped and dedup
    assert 0.04 < m["dedup_ratio"] < 0.15
    assert m["units_used"] > 150
    assert (tiny_run.root / "speech_tokenizer" / "speech_tokenizer.json").exists()
    for figure in ("01_tokenization_example", "01_units_per_second", "01_unit_histogram"):
        assert (tiny_run.root / "figures" / f"{figure}.png").stat().st_size > 10_000
    assert_clean(tiny_run.executed("01_tokenization.ipynb"))
    # running it again changes nothing: the tokenizer is reused and no unit is written twice
    def shards():
        folder = tiny_run.root / "units" / "speech_sample"
        return sorted((p.name, p.stat().st_mtime_ns) for p in folder.glob("shard-*"))

    units = shards()
    assert units
    run_notebook("01_tokenization.ipynb", tiny_run.root, {"PROFILE": "tiny"})
    assert tiny_run.metrics("01_tokenization") == m
    assert shards() == units


@pytest.mark.slow
def test_notebook_02_model_initialization(tiny_run):
    m = tiny_run.metrics("02_model_initialization")
    assert m["parameters"] > 500_000 and set(m["models"]) == {"twist", "random"}
    assert m["text_lm_final_loss"] < 6.0
    for init in ("twist", "random"):
        assert (tiny_run.root / "models" / f"init_{init}" / "speech_tokenizer" / "speech_tokenizer.json").exists()
        assert m["short_run"][init]["train loss"] < 6.0
    assert (tiny_run.root / "figures" / "02_twist_vs_random.png").stat().st_size > 10_000
    assert_clean(tiny_run.executed("02_model_initialization.ipynb"))


@pytest.mark.slow
def test_notebook_03_synthetic_data(tiny_run):
    m = tiny_run.metrics("03_synthetic_data")
    s = P.data.synthetic
    assert m["heldout_overlap"] == 0
    assert m["benchmark_pairs"] == {"tsc": s.n_test_stories, "ssc": s.n_test_stories, "sblimp": s.n_sblimp}
    assert m["preference_pairs"]["preference/heldout"] == s.n_heldout_preference
    # SpokenSwag's Auto-BLEU filter may drop a few training pairs, never most of them
    assert 0.9 * s.n_preference <= m["preference_pairs"]["preference/train"] <= s.n_preference
    assert set(m["corpora"]) == {"read_speech", "spoken_stories", "preference/train", "preference/heldout"}
    assert m["corpora"]["spoken_stories"]["utterances"] == s.n_stories
    assert 5 < m["corpora"]["spoken_stories"]["units per second"] < 14
    assert m["speech_tokenizer"] == SpeechTokenizer.load(tiny_run.root / "speech_tokenizer").fingerprint()
    assert (tiny_run.root / "figures" / "03_corpus_lengths.png").stat().st_size > 10_000
    assert_clean(tiny_run.executed("03_synthetic_data.ipynb"))


@pytest.mark.slow
def test_notebook_04_packed_pretraining(tiny_run):
    m = tiny_run.metrics("04_packed_pretraining")
    assert m["steps"] == P.train.max_steps and m["final_loss"] < m["first_loss"] - 1.0
    assert m["plan"]["by"] == "steps"
    assert 0.5 < m["packing_fill"] <= 1.0
    from slamlib.model import load_speech_lm

    model, tokenizer = load_speech_lm(tiny_run.root / "models" / "pretrained")
    assert tokenizer.fingerprint() == SpeechTokenizer.load(tiny_run.root / "speech_tokenizer").fingerprint()
    for figure in ("04_packed_rows", "04_pretraining_loss", "04_learning_rate"):
        assert (tiny_run.root / "figures" / f"{figure}.png").stat().st_size > 5_000
    assert_clean(tiny_run.executed("04_packed_pretraining.ipynb"))


@pytest.mark.slow
def test_notebook_05_dpo(tiny_run):
    m = tiny_run.metrics("05_dpo")
    # DPO starts at log 2 (the model is its own reference), plus the profile's likelihood term:
    # sft_weight x the chosen endings' NLL per unit, which is below log 502 for any model that learned
    w = P.dpo.sft_weight
    assert m["steps"] >= 1 and 0.6931 - w < m["first_loss"] < 0.6931 + w * math.log(502)
    for when in ("before", "after"):
        assert m[when]["preference_heldout"]["pairs"] == P.data.synthetic.n_heldout_preference and "ssc" in m[when]["benchmarks"]
    assert (tiny_run.root / "models" / "dpo" / "speech_tokenizer" / "speech_tokenizer.json").exists()
    assert (tiny_run.root / "figures" / "05_dpo.png").stat().st_size > 10_000
    assert_clean(tiny_run.executed("05_dpo.ipynb"))


@pytest.mark.slow
def test_notebook_06_evaluation(tiny_run):
    m = tiny_run.metrics("06_evaluation")
    for model in ("pretrained", "DPO"):
        result = m["results"][model]
        assert set(result["benchmarks"]) == {"sblimp", "swuggy", "ssc", "tsc"} and not result["missing"]
        assert all(0 <= b["accuracy"] <= 100 and b["pairs"] >= 1000 for name, b in result["benchmarks"].items()
                   if name != "swuggy")
        lexical = result["benchmarks"]["swuggy"]  # ZeroSpeech's lexical layout: items averaged over their 2 voices
        assert lexical["pairs"] >= P.data.synthetic.n_swuggy and lexical["breakdown_pairs"]["OOV"] >= 10
        assert result["preference_heldout"]["pairs"] == P.data.synthetic.n_heldout_preference
    assert not m["generation"]["computed"] and "whisper" in m["generation"]["reason"]
    assert m["generation"]["new_units_mean"] > 0
    assert "| Slam, paper | 1×A5000, 24 h | 58.86 |" in m["paper_table"] and "| DPO | this run (tiny) |" in m["paper_table"]
    executed = tiny_run.executed("06_evaluation.ipynb")
    nb = nbformat.read(executed, as_version=4)
    audio = [o for c in nb.cells for o in c.get("outputs", []) if "audio" in str(o.get("data", {}).get("text/html", ""))]
    assert len(audio) >= 4  # prompts and continuations to listen to
    assert_clean(executed)


@pytest.mark.slow
def test_run_set_reaches_notebook_06_over_its_parameter_default(tiny_run, tmp_path):
    """`python -m slamlib run --set eval.score=sum` scores by the sum in notebook 06, whose SCORE
    parameter is left at None: profile < --set < a parameter given explicitly."""
    run = tmp_path / "run"
    run.mkdir()
    for name in ("speech_tokenizer", "models", "benchmarks", "units"):  # notebook 06's inputs, not its outputs
        (run / name).symlink_to(tiny_run.root / name)
    overrides = {"eval.score": "sum", "eval.n_generations": "1", "eval.benchmarks": '[["sblimp", "benchmarks/sblimp"]]'}
    run_tutorial("tiny", run, notebooks=("06_evaluation.ipynb",), overrides=overrides)
    m = json.loads((run / "metrics" / "06_evaluation.json").read_text())
    assert m["score"] == "sum" and set(m["results"]["DPO"]["benchmarks"]) == {"sblimp"}
    by_mean = tiny_run.metrics("06_evaluation")["results"]
    assert [m["results"][k]["benchmarks"]["sblimp"]["correct"] != by_mean[k]["benchmarks"]["sblimp"]["correct"]
            for k in ("pretrained", "DPO")] != [False, False]  # other scores: some verdict differs
    assert_clean(run / "notebooks" / "06_evaluation.ipynb")


@pytest.mark.slow
def test_run_metrics_gather_the_headline_numbers(tiny_run):
    """What `slamlib run` writes after the six notebooks: metrics.json's fields and results.md."""
    from slamlib.pipeline import run_metrics
    from slamlib.runs import RunDir

    seconds = {"01_tokenization.ipynb": 10.0, "06_evaluation.ipynb": 20.5}
    run_dir = tiny_run.root
    m = run_metrics(RunDir(run_dir), "tiny", seconds)
    evaluated = tiny_run.metrics("06_evaluation")["results"]
    assert m["profile"] == "tiny" and m["total_seconds"] == 30.5
    assert set(m["benchmarks"]) == set(m["benchmarks_before_dpo"]) == {"sblimp", "swuggy", "ssc", "tsc"}
    assert m["benchmarks"]["tsc"] == round(evaluated["DPO"]["benchmarks"]["tsc"]["accuracy"], 2)
    assert m["benchmarks_before_dpo"]["sblimp"] == round(evaluated["pretrained"]["benchmarks"]["sblimp"]["accuracy"], 2)
    assert m["pairs"] == {name: b["pairs"] for name, b in evaluated["DPO"]["benchmarks"].items()}
    assert m["preference_heldout"]["pairs"] == P.data.synthetic.n_heldout_preference
    assert {"before_dpo", "after_dpo"} <= set(m["preference_heldout"])
    # DPO's change is paired: the mean of the per-pair differences, the same pairs before and after
    before, after = (evaluated[k]["benchmarks"]["tsc"]["correct"] for k in ("pretrained", "DPO"))
    assert len(before) == len(after) == m["pairs"]["tsc"]
    assert m["dpo_change"]["tsc"]["change"] == round(100 * (sum(after) - sum(before)) / len(after), 2)
    assert set(m["dpo_change"]) == {"sblimp", "swuggy", "ssc", "tsc", "preference_heldout"}
    assert "| change with DPO (paired 95% interval) |" in m["results_md"]
    for name in ("pretrained", "dpo"):
        assert (run_dir / m["models"][name] / "config.json").exists()  # absolute paths replace run_dir
    table = m["results_md"]
    assert table.startswith("# Results: tiny profile") and "| Slam, paper |" in table and "| total | 30.5 |" in table


@pytest.mark.slow
def test_metrics_json_says_what_made_the_run(tiny_run):
    """Versions, machine and content hashes in the metrics.json that `slamlib run` wrote."""
    import torch
    import transformers

    from slamlib.provenance import content_hash

    made = json.loads((tiny_run.root / "metrics.json").read_text())["provenance"]
    assert made["versions"]["torch"] == torch.__version__ and made["versions"]["transformers"] == transformers.__version__
    assert made["machine"]["torch_threads"] >= 1 and made["machine"]["cpu"]
    hashes = made["hashes"]
    assert {"speech_tokenizer", "units/spoken_stories", "models/pretrained", "models/dpo"} <= set(hashes)
    assert hashes["models/dpo"] == content_hash(tiny_run.root / "models" / "dpo",
                                                ("config.json", "*.safetensors", "speech_tokenizer/*"))
    assert hashes["models/dpo"] != hashes["models/pretrained"] and len(hashes["speech_tokenizer"]) == 12


def test_a_notebook_says_which_notebook_to_run_first(tmp_path):
    with pytest.raises(NotebookFailed, match="run notebooks/01_tokenization.ipynb first"):
        run_notebook("03_synthetic_data.ipynb", tmp_path / "empty-run", {"PROFILE": "tiny", "SCALE": 0.005})


def test_a_failing_notebook_names_the_cell_and_keeps_the_copy(tmp_path):
    with pytest.raises(NotebookFailed) as err:
        run_tutorial("no-such-profile", tmp_path / "run", notebooks=["01_tokenization.ipynb"])
    message = str(err.value)
    assert "01_tokenization.ipynb failed in cell" in message and "unknown profile" in message
    assert (tmp_path / "run" / "notebooks" / "01_tokenization.ipynb").exists()


def test_notebook_sources_are_where_the_pipeline_looks():
    assert (NOTEBOOK_DIR / "01_tokenization.ipynb").exists()
