import json

import pytest

from slamlib import results
from slamlib.cli import main


def fake_run(root, seed, init="twist", ssc=(60.0, 62.0), change=2.0):
    """A finished run folder's metrics.json, as run_tutorial writes it."""
    root.mkdir(parents=True)
    metrics = {
        "profile": "tiny", "overrides": {}, "parameters": {"SEED": seed, "INIT": init},
        "seconds": {"01_tokenization.ipynb": 30.0, "02_model_initialization.ipynb": 90.0}, "total_seconds": 120.0,
        "benchmarks_before_dpo": {"sblimp": 75.0, "ssc": ssc[0], "tsc": 70.0},
        "benchmarks": {"sblimp": 74.0, "ssc": ssc[1], "tsc": 71.0},
        "intervals95": {"sblimp": 2.7, "ssc": 3.0, "tsc": 2.8}, "pairs": {"sblimp": 1000, "ssc": 1000, "tsc": 1000},
        "preference_heldout": {"before_dpo": 55.0, "after_dpo": 90.0, "pairs": 1000},
        "dpo_change": {"ssc": {"change": change, "interval95": 1.5}, "tsc": {"change": 1.0, "interval95": 1.0},
                       "sblimp": {"change": -1.0, "interval95": 0.8},
                       "preference_heldout": {"change": 35.0, "interval95": 3.0}},
        "steps": {"04_packed_pretraining": {"init": init, "tokens_per_second": 20123.4}},
    }
    (root / "metrics.json").write_text(json.dumps(metrics))
    return root


@pytest.fixture(autouse=True)
def this_machine(monkeypatch):
    monkeypatch.setattr(results, "machine", lambda: "2 cores, Test CPU")


def test_a_run_becomes_a_record_and_readme_rows(tmp_path):
    file = tmp_path / "results.json"
    results.add(fake_run(tmp_path / "a", 0), path=file)
    results.add(fake_run(tmp_path / "b", 1, change=4.0), path=file)
    results.add(fake_run(tmp_path / "c", 1, init="random"), path=file)
    runs = results.load(file)
    assert [r["label"] for r in runs] == ["seed 0", "seed 1", "seed 1, random init"]
    made = results.tables(runs)
    assert "| seed 0 | 75.0 → 74.0 | 60.0 → 62.0 | 70.0 → 71.0 | 55.0 → 90.0 | 2.0 | 20,123 |" in made["seeds"]
    # the mean change over two seeds, 2.0 and 4.0: 3.0 ± 12.71 * sd(1.414) / sqrt(2) = 12.71
    assert "| mean of 2 seeds | +35.0 ± 0.0 | +3.0 ± 12.7 | +1.0 ± 0.0 | -1.0 ± 0.0 |" in made["dpo"]
    assert "| seed 1 | +35.0 ± 3.0 | +4.0 ± 1.5 | +1.0 ± 1.0 | -1.0 ± 0.8 |" in made["dpo"]
    assert made["init"].splitlines()[2:] == ["| 1 | twist | 75.0 | 60.0 | 70.0 | 55.0 |",
                                             "| 1 | random | 75.0 | 60.0 | 70.0 | 55.0 |"]
    assert "| seed 1 | 30 | 90 | 120 |" in made["times"]
    assert made["headline"].splitlines()[-2:] == ["| pretrained (seed 0) | `tiny`, 2 cores, 2.0 min | 75.0* | 60.0* | 70.0* |",
                                                  "| after DPO (seed 0) | `tiny`, 2 cores, 2.0 min | 74.0* | 62.0* | 71.0* |"]
    again = results.add(fake_run(tmp_path / "d", 0, ssc=(61.0, 63.0)), path=file)  # the same label replaces
    assert again["label"] == "seed 0" and len(results.load(file)) == 3
    # a seed run a second time (another label) is a row of its own, but counted once in the mean
    results.add(fake_run(tmp_path / "e", 1, change=10.0), label="seed 1, again", path=file)
    made = results.tables(results.load(file))
    assert "| seed 1, again | +35.0 ± 3.0 | +10.0 ± 1.5 |" in made["dpo"]
    assert "| mean of 2 seeds | +35.0 ± 0.0 | +3.0 ± 12.7 |" in made["dpo"]


def test_readme_tables_are_rewritten_and_checked(tmp_path, capsys):
    file, readme = tmp_path / "results.json", tmp_path / "README.md"
    readme.write_text("intro\n<!-- results:seeds -->\nold\n<!-- /results:seeds -->\noutro\n")
    main(["results", "add", str(fake_run(tmp_path / "a", 0)), "--file", str(file)])
    with pytest.raises(SystemExit) as stop:
        main(["results", "readme", "--check", "--file", str(file), "--readme", str(readme)])
    assert stop.value.code == 1 and "results readme" in capsys.readouterr().err
    main(["results", "readme", "--file", str(file), "--readme", str(readme)])
    text = readme.read_text()
    assert text.startswith("intro\n<!-- results:seeds -->\n| run |") and text.endswith("<!-- /results:seeds -->\noutro\n")
    assert "| seed 0 | 75.0 → 74.0" in text and "old" not in text
    main(["results", "readme", "--check", "--file", str(file), "--readme", str(readme)])


def test_prose_quotes_numbers_from_the_records_settings_and_paper(tmp_path):
    runs = [results.record(fake_run(tmp_path / "a", 0, ssc=(60.0, 57.5), change=-2.5)),
            results.record(fake_run(tmp_path / "b", 1, ssc=(64.0, 63.0), change=-1.0)),
            results.record(fake_run(tmp_path / "c", 1, init="random", ssc=(66.0, 66.0)))]
    quoted = results.facts(runs)
    assert quoted["seeds"] == "two" and quoted["seed0.pairs"] == "55.0 → 90.0" and quoted["dpo.pairs"] == "35"
    # sSC -2.5 and -1.0, tSC +1.0 on both seeds: the story tests move both ways
    assert quoted["dpo.stories"] == "move by -2.5 to +1.0 points" and quoted["dpo.ssc.mean"] == "-1.8"
    assert quoted["stories"] == "60–70" and quoted["grammar"] == "75" and quoted["interval95"] == "2.8"
    assert quoted["init.ssc"] == "64.0 for TWIST against 66.0 for random" and quoted["init.seeds"] == "one"
    text = ("lr <!-- r:tiny.train.lr -->?<!-- /r -->, <!-- r:tiny.train.max_steps -->?<!-- /r --> steps, "
            "paper <!-- r:paper.ssc -->?<!-- /r --> to <!-- r:paper.dpo.ssc -->?<!-- /r -->, "
            "pairs <!-- r:seed0.pairs -->?<!-- /r -->")
    assert results.render(text, runs) == ("lr <!-- r:tiny.train.lr -->5e-3<!-- /r -->, "
                                           "<!-- r:tiny.train.max_steps -->1,000<!-- /r --> steps, paper "
                                           "<!-- r:paper.ssc -->55.6<!-- /r --> to <!-- r:paper.dpo.ssc -->58.0<!-- /r -->, "
                                           "pairs <!-- r:seed0.pairs -->55.0 → 90.0<!-- /r -->")
    with pytest.raises(ValueError, match="quotes 'tiny.train.nothing'"):
        results.render("<!-- r:tiny.train.nothing -->1<!-- /r -->", runs)


def test_the_committed_readme_and_docs_match_the_committed_results():
    assert results.load(), "results/tiny.json holds the runs README reports"
    stale = results.update_docs(check=True)
    assert not stale, f"{stale} differ from results/tiny.json: python -m slamlib results readme"


def test_bad_input_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="metrics.json"):
        results.record(tmp_path)
    (tmp_path / "bad.json").write_text("[1, 2]")
    with pytest.raises(ValueError, match="bad.json"):
        results.load(tmp_path / "bad.json")
