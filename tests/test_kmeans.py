import hashlib

import joblib
import numpy as np
import pytest
import torch
from sklearn.cluster import KMeans as SkKMeans

from slamlib.hub import AssetUnavailableError
from slamlib.tokenization.kmeans import KMeans, fit_kmeans, load_kmeans, load_sklearn_kmeans


def test_assignment_equals_brute_force():
    gen = torch.Generator().manual_seed(0)
    centroids = torch.randn(500, 64, generator=gen)
    x = torch.randn(5000, 64, generator=gen) * 1.5
    brute = torch.cdist(x.double(), centroids.double()).argmin(dim=1)
    km = KMeans(centroids)
    assert torch.equal(km.assign(x), brute)
    assert torch.equal(km.assign(x, chunk_size=333), brute)  # chunking changes nothing


def test_assignment_checks_shapes():
    km = KMeans(torch.zeros(3, 4))
    with pytest.raises(ValueError, match=r"\(frames, 4\)"):
        km.assign(torch.zeros(10, 5))
    with pytest.raises(ValueError, match="NaN"):
        KMeans(torch.tensor([[0.0, float("nan")]]))


def blobs(n_per=400, seed=0):
    gen = torch.Generator().manual_seed(seed)
    centres = torch.tensor([[0.0, 0.0, 0.0], [8.0, 0.0, 0.0], [0.0, 8.0, 0.0], [0.0, 0.0, 8.0]])
    points = torch.cat([c + torch.randn(n_per, 3, generator=gen) * 0.5 for c in centres])
    return centres, points


def test_fit_recovers_separated_clusters():
    centres, points = blobs()
    km = fit_kmeans(points, 4, seed=0, batch_size=256, steps=50, device="cpu")
    nearest = torch.cdist(centres, km.centroids).min(dim=1)
    assert (nearest.values < 0.2).all()  # each true centre has a fitted centroid next to it
    assert len(set(nearest.indices.tolist())) == 4
    assert km.inertia(points) < 1.0  # ~ 3 * 0.5**2 for a perfect fit


def test_fit_is_as_good_as_sklearn_and_deterministic():
    x = torch.randn(6000, 16, generator=torch.Generator().manual_seed(3))
    ours = fit_kmeans(x, 32, seed=0, device="cpu")
    again = fit_kmeans(x, 32, seed=0, device="cpu")
    other_seed = fit_kmeans(x, 32, seed=1, device="cpu")
    assert torch.equal(ours.centroids, again.centroids)
    assert not torch.equal(ours.centroids, other_seed.centroids)
    reference = SkKMeans(32, n_init=1, random_state=0).fit(x.numpy())
    sklearn_inertia = reference.inertia_ / len(x)
    assert ours.inertia(x) < 1.03 * sklearn_inertia


def test_fit_needs_enough_frames():
    with pytest.raises(ValueError, match="cannot fit 10 units to only 5 frames"):
        fit_kmeans(torch.randn(5, 2), 10, device="cpu")


def official_format(path, n_clusters=20, dim=12, seed=0):
    """A file in the format of the official TWIST k-means: joblib.dump of a fitted sklearn KMeans."""
    x = np.random.default_rng(seed).normal(size=(400, dim)).astype(np.float32)
    model = SkKMeans(n_clusters, n_init=1, random_state=seed).fit(x)
    joblib.dump(model, path)
    return model


def test_official_format_loads_as_plain_centroids(tmp_path):
    sk = official_format(tmp_path / "km.bin")
    km = load_sklearn_kmeans(str(tmp_path / "km.bin"), trust=True)
    assert torch.equal(km.centroids, torch.from_numpy(sk.cluster_centers_.astype(np.float32)))
    x = np.random.default_rng(1).normal(size=(300, 12)).astype(np.float32)
    assert km.assign(torch.from_numpy(x)).tolist() == sk.predict(x).tolist()
    digest = hashlib.sha256((tmp_path / "km.bin").read_bytes()).hexdigest()
    assert load_kmeans(str(tmp_path / "km.bin"), sha256=digest).fingerprint() == km.fingerprint()


def test_a_pickle_is_loaded_only_when_vouched_for(tmp_path, monkeypatch):
    """A pickle runs code when loaded: one that is not the official file loads only with its
    SHA-256 pinned or with trust given, and a wrong SHA-256 is refused (also from the cache)."""
    from slamlib.tokenization.kmeans import UntrustedPickle

    official_format(tmp_path / "km.bin")
    ran = tmp_path / "ran"

    class Payload:  # what a malicious file could hold: code that runs on load
        def __reduce__(self):
            return (open, (str(ran), "w"))

    joblib.dump(Payload(), tmp_path / "evil.bin")
    digest = hashlib.sha256((tmp_path / "km.bin").read_bytes()).hexdigest()
    for ref in ("km.bin", "evil.bin"):
        with pytest.raises(UntrustedPickle, match=rf"{ref}: a pickled k-means runs whatever code .* its SHA-256 is "
                                                  r"[0-9a-f]{64}\. If you trust it, pin it \(--set tokenizer.kmeans_sha256="):
            load_kmeans(str(tmp_path / ref))
    assert not ran.exists()  # refused before loading
    with pytest.raises(UntrustedPickle, match=rf"evil.bin: its SHA-256 is [0-9a-f]{{64}}, not the {digest}"):
        load_kmeans(str(tmp_path / "evil.bin"), sha256=digest)
    assert not ran.exists()
    cache = tmp_path / "cache"
    load_sklearn_kmeans(str(tmp_path / "km.bin"), cache_dir=cache, sha256=digest)
    with pytest.raises(UntrustedPickle):  # centroids in the cache do not vouch for the file
        load_sklearn_kmeans(str(tmp_path / "km.bin"), cache_dir=cache)
    from slamlib import hub
    from slamlib.profiles import TWIST_KMEANS_500

    monkeypatch.setitem(hub.KNOWN_SHA256, TWIST_KMEANS_500, digest)  # as if km.bin were the official file
    assert load_kmeans(str(tmp_path / "km.bin")).n_units == 20  # a copy of the official file needs no flag


def test_each_kmeans_file_gets_its_own_cache_entry(tmp_path):
    """Two different files with the same name must never share cached centroids."""
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    official_format(tmp_path / "a" / "km500.bin", seed=0)
    official_format(tmp_path / "b" / "km500.bin", seed=1)
    cache = tmp_path / "cache"
    first = load_sklearn_kmeans(str(tmp_path / "a" / "km500.bin"), cache_dir=cache, trust=True)
    second = load_sklearn_kmeans(str(tmp_path / "b" / "km500.bin"), cache_dir=cache, trust=True)
    assert not torch.equal(first.centroids, second.centroids)
    cached = sorted(p.name for p in cache.iterdir())
    digest = hashlib.sha256((tmp_path / "a" / "km500.bin").read_bytes()).hexdigest()[:16]
    assert len(cached) == 2 and f"km500-{digest}.npy" in cached
    # a second load comes from the cache and gives the same centroids
    assert torch.equal(load_sklearn_kmeans(str(tmp_path / "a" / "km500.bin"), cache_dir=cache, trust=True).centroids,
                       first.centroids)


def test_bad_kmeans_files(tmp_path):
    (tmp_path / "junk.bin").write_bytes(b"definitely not a pickle")
    with pytest.raises(ValueError, match="junk.bin: cannot be read"):
        load_sklearn_kmeans(str(tmp_path / "junk.bin"), trust=True)
    joblib.dump({"not": "kmeans"}, tmp_path / "dict.bin")
    with pytest.raises(ValueError, match="has no cluster_centers_"):
        load_sklearn_kmeans(str(tmp_path / "dict.bin"), trust=True)
    with pytest.raises(AssetUnavailableError, match="no such path"):
        load_sklearn_kmeans(str(tmp_path / "absent.bin"))


def test_official_url_offline_names_the_asset():
    from slamlib.profiles import TWIST_KMEANS_500

    with pytest.raises(AssetUnavailableError) as err:
        load_kmeans(TWIST_KMEANS_500)
    message = str(err.value)
    assert "k-means" in message and TWIST_KMEANS_500 in message and "pass its path" in message


def test_save_load_round_trip(tmp_path):
    km = KMeans(torch.randn(7, 3))
    km.save(tmp_path / "c.npy")
    assert torch.equal(KMeans.load(tmp_path / "c.npy").centroids, km.centroids)
    (tmp_path / "bad.npy").write_bytes(b"nope")
    with pytest.raises(ValueError, match="bad.npy: not a centroid matrix"):
        KMeans.load(tmp_path / "bad.npy")
