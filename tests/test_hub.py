import json

import pytest

from slamlib import hub
from slamlib.hub import AssetUnavailableError


def test_offline_model_error_names_asset_origin_and_fix():
    with pytest.raises(AssetUnavailableError) as err:
        hub.resolve_model("slprl/mhubert-base-25hz", what="HuBERT speech encoder")
    message = str(err.value)
    assert "HuBERT speech encoder 'slprl/mhubert-base-25hz'" in message
    assert "https://huggingface.co/slprl/mhubert-base-25hz" in message
    assert "hf download slprl/mhubert-base-25hz --local-dir DIR" in message
    assert "offline mode" in message


def test_offline_dataset_error():
    with pytest.raises(AssetUnavailableError) as err:
        hub.load_dataset("slprl/sTinyStories", what="spoken stories")
    message = str(err.value)
    assert "huggingface.co/datasets/slprl/sTinyStories" in message and "--repo-type dataset" in message


def test_offline_url_error():
    url = "https://example.org/models/km.bin"
    with pytest.raises(AssetUnavailableError, match="offline mode is on") as err:
        hub.resolve_file(url, what="k-means")
    assert url in str(err.value) and "pass its path instead of the URL" in str(err.value)


def test_local_paths_are_used_as_they_are(tmp_path):
    (tmp_path / "model").mkdir()
    (tmp_path / "file.bin").write_bytes(b"x")
    assert hub.resolve_model(str(tmp_path / "model")) == tmp_path / "model"
    assert hub.resolve_file(str(tmp_path / "file.bin")) == tmp_path / "file.bin"
    with pytest.raises(AssetUnavailableError, match="neither a local directory nor a hub id"):
        hub.resolve_model(str(tmp_path / "missing" / "deeper"))
    with pytest.raises(AssetUnavailableError, match="a model directory was expected"):
        hub.resolve_model(str(tmp_path / "file.bin"))


def test_checksums_are_verified(tmp_path):
    import hashlib

    path = tmp_path / "f.bin"
    path.write_bytes(b"payload")
    good = hashlib.sha256(b"payload").hexdigest()
    assert hub.resolve_file(str(path), sha256=good) == path
    with pytest.raises(AssetUnavailableError, match="expected 0000"):
        hub.resolve_file(str(path), sha256="0000")


def test_cached_download_needs_no_network(monkeypatch, tmp_path):
    """A URL fetched once is served from a cache folder keyed by the whole URL."""
    monkeypatch.setenv("SLAMLIB_CACHE", str(tmp_path))
    url_a, url_b = "https://a.example/x/km.bin", "https://b.example/y/km.bin"
    import hashlib

    for url, payload in ((url_a, b"A"), (url_b, b"B")):
        target = tmp_path / "files" / hashlib.sha256(url.encode()).hexdigest()[:16] / "km.bin"
        target.parent.mkdir(parents=True)
        target.write_bytes(payload)
    assert hub.resolve_file(url_a).read_bytes() == b"A"
    assert hub.resolve_file(url_b).read_bytes() == b"B"


def test_local_dataset_folder(tmp_path):
    from datasets import Dataset

    Dataset.from_dict({"x": [1, 2, 3]}).to_parquet(str(tmp_path / "train-00000.parquet"))
    assert hub.load_dataset(str(tmp_path))["x"] == [1, 2, 3]
    Dataset.from_dict({"y": [4]}).save_to_disk(str(tmp_path / "saved"))
    assert hub.load_dataset(str(tmp_path / "saved"))["y"] == [4]


def test_partial_split_folders_of_the_hubs_parquet_conversion(tmp_path):
    """refs/convert/parquet keeps the first part of a large split under CONFIG/partial-SPLIT/."""
    from datasets import Dataset

    for folder, values in (("clean/partial-train", [1, 2, 3]), ("clean/validation", [7]), ("other/partial-test", [9])):
        (tmp_path / folder).mkdir(parents=True)
        Dataset.from_dict({"x": values}).to_parquet(str(tmp_path / folder / "0000.parquet"))
    assert hub.load_dataset(str(tmp_path), name="clean", split="train")["x"] == [1, 2, 3]
    assert hub.load_dataset(str(tmp_path), name="clean", split="validation")["x"] == [7]
    assert hub.load_dataset(str(tmp_path), split="test")["x"] == [9]
    assert hub.split_files([f"{tmp_path}/other/partial-test/0000.parquet"], "train") == []  # a named split is not train


def test_a_pinned_model_is_fetched_at_its_revision_and_noted(tmp_path, monkeypatch):
    """`org/name@revision` reaches snapshot_download as the revision; the commit it resolved to
    is noted, and a run's metrics files carry it (`hub_revisions`)."""
    import huggingface_hub

    from slamlib.runs import RunDir

    asked = []

    def fake_snapshot_download(repo_id, revision=None):
        asked.append((repo_id, revision))
        folder = tmp_path / "snapshots" / "0123abc"
        folder.mkdir(parents=True, exist_ok=True)
        return str(folder)

    for name in ("SLAMLIB_OFFLINE", "HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_DATASETS_OFFLINE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(huggingface_hub, "snapshot_download", fake_snapshot_download)
    monkeypatch.setattr(hub, "_RESOLVED", {})
    assert hub.resolve_model("slprl/mhubert-base-25hz@v1.0") == tmp_path / "snapshots" / "0123abc"
    assert asked == [("slprl/mhubert-base-25hz", "v1.0")]
    assert hub.resolved() == {"slprl/mhubert-base-25hz": "0123abc"}
    run = RunDir(tmp_path / "run")
    metrics = json.loads(run.write_metrics("01_tokenization", {"units": 3}).read_text())
    assert metrics == {"units": 3, "hub_revisions": {"slprl/mhubert-base-25hz": "0123abc"}}
    from slamlib.provenance import hub_revisions

    assert hub_revisions(tmp_path / "run") == {"slprl/mhubert-base-25hz": "0123abc"}
    assert hub.split_revision(str(tmp_path / "a@b")) == (str(tmp_path / "a@b"), None)  # a path stays whole
