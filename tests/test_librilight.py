"""Libri-Light's layout cut by its voice activity, and one corpus tokenized by several processes."""

import json
import os
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from slamlib.audio import SAMPLE_RATE, write_audio
from slamlib.data.librilight import is_librilight, librilight_items, vad_groups
from slamlib.tokenization.corpus import read_units, tokenize_corpus


def _voiced(seconds: float, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * SAMPLE_RATE)) / SAMPLE_RATE
    return (0.3 * np.sin(2 * np.pi * rng.uniform(150, 600) * t) + 0.02 * rng.standard_normal(len(t))).astype(np.float32)


def _file(root, rel, segments, total, seed, meta="json"):
    """A FILE.flac of `total` seconds, voiced in `segments`, with its JSON (or a broken one, or none)."""
    wav = np.zeros(int(total * SAMPLE_RATE), np.float32)
    for k, (on, off) in enumerate(segments):
        a, b = int(on * SAMPLE_RATE), min(len(wav), int(off * SAMPLE_RATE))
        wav[a:b] = _voiced(off - on, seed + k)[: b - a]
    path = write_audio(root / f"{rel}.flac", wav)
    if meta == "json":
        path.with_suffix(".json").write_text(json.dumps({"speaker": rel.split("/")[0], "book_meta": {"id": "1"},
                                                         "snr": 10.0, "voice_activity": segments}))
    elif meta == "broken":
        path.with_suffix(".json").write_text('{"speaker": "7", "voice_activ')
    return path


@pytest.fixture
def librilight(tmp_path):
    root = tmp_path / "small"
    _file(root, "100/book_a/ch01", [[0.5, 3.0], [3.5, 7.25], [8.0, 9.0], [9.5, 14.0]], 15.0, 1)
    _file(root, "100/book_a/ch02", [[1.0, 2.0], [2.5, 30.0]], 30.0, 2, meta="none")
    _file(root, "200/book_b/ch01", [[0.0, 2.0]], 3.0, 3, meta="broken")
    _file(root, "200/book_b/ch02", [], 2.0, 4)
    _file(root, "300/book_c/ch01", [[0.5, 2.0], [2.5, 9.0]], 4.0, 5)  # the second span passes the file's end
    return root


def test_segments_are_joined_up_to_the_target_as_cut_by_vad_does():
    # 2.5 + 3.75 = 6.25 s voiced, then 1 s would pass 7 s; a segment longer than the target stands alone
    assert vad_groups([(0.5, 3.0), (3.5, 7.25), (8.0, 9.0), (9.5, 14.0)], 7.0) == [
        [(0.5, 3.0), (3.5, 7.25)], [(8.0, 9.0), (9.5, 14.0)]]
    assert vad_groups([(0, 10), (11, 12)], 5.0) == [[(0, 10)], [(11, 12)]]


def test_items_name_file_and_span_and_read_only_their_segments(librilight):
    assert is_librilight(librilight) and not is_librilight(librilight / "nowhere")
    items, notes = librilight_items(librilight, target_seconds=7.0)
    by_id = {i.id: i for i in items}
    assert sorted(by_id) == ["100/book_a/ch01/0000.50-0007.25", "100/book_a/ch01/0008.00-0014.00",
                             "100/book_a/ch02/0000.00-0007.00", "100/book_a/ch02/0007.00-0014.00",
                             "100/book_a/ch02/0014.00-0021.00", "100/book_a/ch02/0021.00-0028.00",
                             "100/book_a/ch02/0028.00-0030.00", "200/book_b/ch01/0000.00-0003.00",
                             "300/book_c/ch01/0000.50-0002.00"]
    first = by_id["100/book_a/ch01/0000.50-0007.25"]
    assert first.seconds == pytest.approx(2.5 + 3.75)
    wav = first.load()
    assert len(wav) == int(6.25 * SAMPLE_RATE)
    assert np.abs(wav[: int(2.5 * SAMPLE_RATE)]).mean() > 0.1 and np.abs(wav[int(2.4 * SAMPLE_RATE): int(2.6 * SAMPLE_RATE)]).mean() > 0.1  # the pause between segments is left out
    assert len(first.long()) == len(wav)
    reasons = {(os.path.basename(n["source"]), n["reason"].split(";")[0].split(" (")[0]) for n in notes}
    assert reasons == {("ch02.json", "no voice-activity JSON beside it"), ("ch01.json", "damaged voice-activity JSON"),
                       ("ch02.flac", "no voice activity in its JSON"),
                       ("ch01.flac [2.5, 9.0]", "voice-activity span outside the file")}
    assert [n.get("cut") for n in notes if n["source"].endswith(".json")] == ["windows", "windows"]


def test_tokenizing_a_librilight_folder_lists_what_it_could_not_use(librilight, tmp_path, speech_tokenizer):
    speech_tokenizer.window_seconds, speech_tokenizer.window_overlap_seconds = 5.0, 1.0  # the 7 s pieces go in windows
    summary = tokenize_corpus(librilight, tmp_path / "units", speech_tokenizer, target_seconds=7.0, progress=False)
    assert summary["tokenized"] == 9 and len(summary["notes"]) == 4
    listed = json.loads((tmp_path / "units" / "bad_audio.json").read_text())
    assert sum("cut" in n for n in listed) == 2 and sum(bool(n.get("skipped")) for n in listed) == 1
    table = read_units(tmp_path / "units").set_index("id")
    items = {i.id: i for i in librilight_items(librilight, 7.0)[0]}
    for audio_id in ("100/book_a/ch01/0000.50-0007.25", "300/book_c/ch01/0000.50-0002.00"):
        whole = speech_tokenizer.tokenize(items[audio_id].load())  # log-mel windows equal the whole
        np.testing.assert_array_equal(table.loc[audio_id, "units"], whole.units)
        np.testing.assert_array_equal(table.loc[audio_id, "durations"], whole.durations)
    again = tokenize_corpus(librilight, tmp_path / "units", speech_tokenizer, target_seconds=7.0, progress=False)
    assert again["tokenized"] == 0 and again["already_done"] == 9


def test_two_processes_write_the_rows_of_one(librilight, tmp_path, speech_tokenizer):
    """`--num-shards 2 --shard-index I` side by side give exactly the one-process rows."""
    speech_tokenizer.save(tmp_path / "tok")
    base = [sys.executable, "-m", "slamlib", "tokenize", str(librilight), "--profile", "tiny", "--tokenizer",
            str(tmp_path / "tok"), "--quiet", "--shard-size", "2", "--set", "data.librilight_target_seconds=7",
            "--set", "tokenizer.window_seconds=5", "--set", "tokenizer.window_overlap_seconds=1"]
    one = subprocess.run(base + ["--out", str(tmp_path / "one")], capture_output=True, text=True)
    assert one.returncode == 0, one.stderr
    shares = [subprocess.Popen(base + ["--out", str(tmp_path / "two"), "--num-shards", "2", "--shard-index", str(i)],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for i in (0, 1)]
    outputs = [p.communicate() for p in shares]
    assert [p.returncode for p in shares] == [0, 0], outputs
    summaries = [json.loads(out.strip().splitlines()[-1]) for out, _ in outputs]
    assert sorted(s["tokenized"] for s in summaries) == [4, 5]
    names = sorted(p.name for p in (tmp_path / "two").glob("shard-*.parquet"))
    assert names[0] == "shard-0-of-2-00000.parquet" and "shard-1-of-2-00000.parquet" in names
    a = read_units(tmp_path / "one").sort_values("id").reset_index(drop=True)
    b = read_units(tmp_path / "two").sort_values("id").reset_index(drop=True)
    pd.testing.assert_frame_equal(a, b)
    # `accelerate launch` (torch's elastic launcher, here with two CPU processes) gives the same shares
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    launch = subprocess.run([sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
                             "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
                             "--main_process_port", str(port), "-m", *base[2:], "--out", str(tmp_path / "acc")],
                            capture_output=True, text=True)
    assert launch.returncode == 0, launch.stderr[-2000:]
    assert sorted(p.name for p in (tmp_path / "acc").glob("shard-*.parquet")) == names
    pd.testing.assert_frame_equal(read_units(tmp_path / "acc").sort_values("id").reset_index(drop=True), a)
    # notebook 03 (`--set data.librilight=...`) finds every utterance tokenized and keeps them
    from slamlib.data.synth import tokenize_librilight
    from slamlib.settings import DataConfig

    again = tokenize_librilight(DataConfig(librilight=str(librilight), librilight_target_seconds=7.0),
                                tmp_path / "two", speech_tokenizer, progress=False)
    assert again["tokenized"] == 0 and again["already_done"] == 9
    # the longest first within a share: share 0 has the 7 s pieces before the short ones
    first = pd.read_parquet(tmp_path / "two" / "shard-0-of-2-00000.parquet")
    assert first["seconds"].tolist() == sorted(first["seconds"].tolist(), reverse=True)


def test_a_share_works_beside_the_others_and_nothing_else_does(tmp_path):
    from slamlib.locks import FolderInUse, folder_lock, share_lock

    hold = ("import sys, time\nfrom slamlib.locks import share_lock\n"
            "with share_lock(sys.argv[1], 'tokenize', '0-of-2'):\n    print('held', flush=True)\n    time.sleep(600)\n")
    holder = subprocess.Popen([sys.executable, "-c", hold, str(tmp_path / "units")], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        with share_lock(tmp_path / "units", "tokenize", "1-of-2"):
            pass  # the other share works beside it
        with pytest.raises(FolderInUse, match=rf"share 0-of-2 is in use by process {holder.pid} \(tokenize"):
            with share_lock(tmp_path / "units", "tokenize", "0-of-2"):
                pass
        with pytest.raises(FolderInUse, match=rf"units is in use by process {holder.pid} \(tokenize"):
            with folder_lock(tmp_path / "units", "slamlib tokenize"):
                pass
    finally:
        holder.kill()
        holder.wait()
    with folder_lock(tmp_path / "units", "after"):
        pass


def test_bad_sharding_flags_are_named(tmp_path):
    run = subprocess.run([sys.executable, "-m", "slamlib", "tokenize", str(tmp_path), "--out", str(tmp_path / "o"),
                          "--num-shards", "2", "--shard-index", "2"], capture_output=True, text=True)
    assert run.returncode != 0 and "--shard-index 2 must be below --num-shards 2" in run.stderr
