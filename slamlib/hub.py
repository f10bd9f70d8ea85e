"""The one place that reaches the network: hub models, hub datasets, and files by URL.

Every asset reference is either a local path, used as is, or a remote name (a Hugging Face hub id
such as `slprl/mhubert-base-25hz`, or an https URL), fetched once into a cache. When a remote
asset cannot be fetched (no network, or offline mode), one `AssetUnavailableError` says which
asset, where it comes from, and how to supply a local copy instead.

A hub id may be pinned to a revision (a commit, tag or branch) as `org/name@revision`; every
model and dataset fetched from the hub is noted with the commit it resolved to (`resolved()`),
which the run's metrics record.

Offline mode: set `SLAMLIB_OFFLINE=1` (or the Hugging Face variables `HF_HUB_OFFLINE=1`); the
tests and the `tiny` profile never need the network at all.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import urllib.request
from pathlib import Path

HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
_RESOLVED: dict[str, str] = {}  # hub id -> the commit it was fetched at, in this process


def split_revision(ref: str) -> tuple[str, str | None]:
    """`org/name@revision` -> (`org/name`, `revision`); anything else (a path, a URL, an id
    without `@`) is returned whole, with None.

    >>> split_revision("slprl/mhubert-base-25hz@v1.0"), split_revision("slprl/mhubert-base-25hz")
    (('slprl/mhubert-base-25hz', 'v1.0'), ('slprl/mhubert-base-25hz', None))
    """
    name, at, revision = str(ref).partition("@")
    if at and revision and HUB_ID.match(name) and not Path(str(ref)).expanduser().exists():
        return name, revision
    return str(ref), None


def resolved() -> dict[str, str]:
    """{hub id: commit} of every hub model and dataset this process fetched."""
    return dict(_RESOLVED)


class AssetUnavailableError(RuntimeError):
    """A model, dataset or file that is neither local nor reachable."""


def is_offline() -> bool:
    flags = ("SLAMLIB_OFFLINE", "HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_DATASETS_OFFLINE")
    return any(os.environ.get(f, "").lower() in ("1", "true", "yes", "on") for f in flags)


def cache_dir() -> Path:
    """Where fetched files and derived caches live (`$SLAMLIB_CACHE`, default ~/.cache/slamlib)."""
    return Path(os.environ.get("SLAMLIB_CACHE", Path.home() / ".cache" / "slamlib")).expanduser()


def is_remote(ref: str) -> bool:
    ref = str(ref)
    return ref.startswith(("http://", "https://")) or (HUB_ID.match(ref) is not None and not Path(ref).exists())


def _unavailable(what: str, ref: str, origin: str, how: str, reason: str) -> AssetUnavailableError:
    return AssetUnavailableError(
        f"Cannot get the {what} '{ref}' from {origin}: {reason}.\n"
        f"To use a local copy instead: {how}"
    )


def _hub_help(ref: str, kind: str) -> str:
    repo_type = " --repo-type dataset" if kind == "dataset" else ""
    return (
        f"on a machine with internet run `hf download {ref}{repo_type} --local-dir DIR`, copy DIR here,"
        f" and pass DIR wherever '{ref}' is named (a profile override or the matching CLI option)."
    )


def _hub_origin(ref: str, what: str, kind: str, local: str) -> str:
    """Where a hub id is fetched from; refused at once when `ref` is not a hub id (nor a local
    `local`, the caller has looked) or when offline mode is on."""
    if not HUB_ID.match(str(ref)):
        raise AssetUnavailableError(f"The {what} '{ref}' is neither a local {local} nor a hub id (org/name).")
    origin = f"the Hugging Face hub (https://huggingface.co/{'datasets/' if kind == 'dataset' else ''}{ref})"
    if is_offline():
        raise _unavailable(what, ref, origin, _hub_help(ref, kind), "offline mode is on")
    return origin


def resolve_model(ref: str, what: str = "model", revision: str | None = None) -> Path:
    """A local directory holding a hub model (config.json and weights)."""
    local = Path(str(ref)).expanduser()
    if local.exists():
        if not local.is_dir():
            raise AssetUnavailableError(f"The {what} '{ref}' is a file; a model directory was expected.")
        return local
    ref, pinned = split_revision(ref)
    revision = revision or pinned
    origin = _hub_origin(ref, what, "model", "directory")
    from huggingface_hub import snapshot_download

    try:
        path = Path(snapshot_download(ref, revision=revision))
        _RESOLVED[ref] = path.name  # a snapshot's folder is named by its commit
        return path
    except Exception as err:  # network errors, auth, missing repo: all leave the user in the same place
        raise _unavailable(what, ref, origin, _hub_help(ref, "model"), f"{type(err).__name__}: {err}") from err


# SHA-256 of the published files the recipe downloads (as textlesslib's checkpoint list records
# them): every download of these is verified.
_TWIST = "https://dl.fbaipublicfiles.com/textless_nlp/twist/speech_tokenizer/"
KNOWN_SHA256 = {
    _TWIST + "mhubert_base_25hz_cp_mls_cv_sp_fisher_L11_km500.bin":
        "03cc04a9c24fec4285e73e709c485756d8f116aa8e724eac555de6a7cf8d28ad",
    _TWIST + "hifigan_lj_mhubert_base_25hz.pt": "d88224e95c501e2cd59a6e4014753169cfe060fb7ade3cc0da03c809fef73b79",
    _TWIST + "hifigan_lj_mhubert_base_25hz_config.json":
        "116dc39be4970cd393e562acd0a0ec70a86aaba7e9ca469b8b836cb3fe46afc7",
}


def resolve_file(ref: str, what: str = "file", sha256: str | None = None) -> Path:
    """A local file for a path or an https URL (downloaded once, verified when its SHA-256 is
    given or known: `KNOWN_SHA256`).

    Downloads are cached under a directory derived from the whole URL, so files that share a
    name but come from different places never overwrite each other."""
    ref = str(ref)
    sha256 = sha256 or KNOWN_SHA256.get(ref)
    if not ref.startswith(("http://", "https://")):
        local = Path(ref).expanduser()
        if not local.is_file():
            raise AssetUnavailableError(f"The {what} '{ref}' is not a file (no such path).")
        _verify(local, sha256, what)
        return local
    name = ref.rstrip("/").rsplit("/", 1)[-1]
    target = cache_dir() / "files" / hashlib.sha256(ref.encode()).hexdigest()[:16] / name
    if target.exists():
        _verify(target, sha256, what)
        return target
    how = f"download {ref} on a machine with internet, copy it here, and pass its path instead of the URL."
    if is_offline():
        raise _unavailable(what, ref, ref, how, "offline mode is on")
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{name}.part")
    try:
        with urllib.request.urlopen(ref, timeout=60) as response, open(tmp, "wb") as out:
            shutil.copyfileobj(response, out)
    except Exception as err:
        tmp.unlink(missing_ok=True)
        raise _unavailable(what, ref, ref, how, f"{type(err).__name__}: {err}") from err
    _verify(tmp, sha256, what)
    os.replace(tmp, target)
    return target


def _verify(path: Path, sha256: str | None, what: str) -> None:
    if sha256 is None:
        return
    actual = hashlib.sha256(path.read_bytes()).hexdigest()
    if actual != sha256:
        raise AssetUnavailableError(f"The {what} at {path} has SHA-256 {actual}, expected {sha256}.")


def split_files(files: list[str], split: str) -> list[str]:
    """The parquet files of one split, by the hub's naming conventions (`data/train-00000-of-00009.parquet`,
    `clean/validation/0000.parquet`, `train.clean.100-00000.parquet`, and `clean/partial-train/0000.parquet`,
    where the hub's parquet conversion kept only the first part of a large split); a repository whose
    file names name no split (sTinyStories' `data/data-00000-of-02191.parquet`) has only "train".

    >>> split_files(["clean/partial-train/0000.parquet", "clean/test/0000.parquet"], "train")
    ['clean/partial-train/0000.parquet']
    """
    def in_split(f: str) -> bool:
        p = Path(f)
        return (p.parent.name in (split, f"partial-{split}")
                or re.match(rf"^{re.escape(split)}(-|\.parquet$)", p.name) is not None)
    chosen = [f for f in files if in_split(f)]
    if chosen:
        return chosen
    named = re.compile(r"^(train|validation|valid|test|dev)[-._]")
    if split == "train" and not any(named.match(Path(f).name) or Path(f).parent.name.removeprefix("partial-") in
                                    ("train", "validation", "test") for f in files):
        return files
    return []


def load_dataset(ref: str, *, name: str | None = None, split: str = "train", streaming: bool = False,
                 shards: int | None = None, what: str = "dataset"):
    """A `datasets` dataset from a hub id or a local copy (a `save_to_disk` folder, a folder of
    parquet files such as a hub snapshot, or one parquet file). `shards` keeps only the first N
    parquet files of the split; `split` may join several with '+' (e.g. LibriSpeech's
    `train.clean.100+train.clean.360`)."""
    import datasets

    local = Path(str(ref)).expanduser()
    if local.exists():
        if (local / "dataset_info.json").exists() or (local / "state.json").exists() or (local / "dataset_dict.json").exists():
            loaded = datasets.load_from_disk(str(local))
            return loaded[split] if isinstance(loaded, datasets.DatasetDict) else loaded
        if local.is_file():
            return datasets.load_dataset("parquet", data_files=str(local), split="train", streaming=streaming)
        files = sorted(str(p) for p in local.rglob("*.parquet"))
        if name:
            files = [f for f in files if f"/{name}/" in f] or files
        chosen = [f for part in split.split("+") for f in split_files(files, part)]
        if not chosen:
            raise AssetUnavailableError(f"The {what} at {local} has no parquet files for split {split!r}.")
        return datasets.load_dataset("parquet", data_files=chosen[:shards] if shards else chosen,
                                     split="train", streaming=streaming)
    ref, revision = split_revision(ref)
    origin = _hub_origin(ref, what, "dataset", "path")
    try:
        from huggingface_hub import HfApi

        commit = HfApi().dataset_info(ref, revision=revision).sha  # what `revision` (or main) is now
        _RESOLVED[ref] = commit
        if shards:
            files = sorted(f for f in HfApi().list_repo_files(ref, repo_type="dataset", revision=commit)
                           if f.endswith(".parquet"))
            if name:
                files = [f for f in files if f.startswith(f"{name}/")] or files
            chosen = [f for part in split.split("+") for f in split_files(files, part)][:shards]
            return datasets.load_dataset("parquet", data_files=[f"hf://datasets/{ref}@{commit}/{f}" for f in chosen],
                                         split="train", streaming=streaming)
        return datasets.load_dataset(ref, name=name, split=split, streaming=streaming, revision=commit)
    except Exception as err:
        raise _unavailable(what, ref, origin, _hub_help(ref, "dataset"), f"{type(err).__name__}: {err}") from err
