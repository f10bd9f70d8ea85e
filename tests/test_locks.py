"""One writer per folder (`slamlib.locks`): a second process is refused at once, by name; a killed
holder blocks nothing; the processes a holder starts work inside its folder."""

import os
import signal
import subprocess
import sys
import time

import pytest

from slamlib.locks import OWNER_ENV, FolderInUse, folder_lock

HOLD = """
import sys, time
from slamlib.locks import folder_lock
with folder_lock(sys.argv[1], "the holder"):
    print("held", flush=True)
    time.sleep(600)
"""


def hold(folder, env=None):
    """A process that holds `folder` until killed; returns once it holds it."""
    process = subprocess.Popen([sys.executable, "-c", HOLD, str(folder)], stdout=subprocess.PIPE, text=True,
                               env={**os.environ, **(env or {})})
    assert process.stdout.readline().strip() == "held"
    return process


def test_a_second_process_is_refused_by_name_and_a_killed_one_blocks_nothing(tmp_path):
    holder = hold(tmp_path / "out")
    try:
        with pytest.raises(FolderInUse, match=rf"out is in use by process {holder.pid} \(the holder, since "):
            with folder_lock(tmp_path / "out", "a second command"):
                pass
        with pytest.raises(FolderInUse, match=rf"out \(around .*inner\) is in use by process {holder.pid}"):
            with folder_lock(tmp_path / "out" / "inner", "a stage inside it"):
                pass
        assert not (tmp_path / "out" / "inner").exists()  # nothing was made
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    with folder_lock(tmp_path / "out", "after the kill") as folder:  # no stale lock
        assert folder == (tmp_path / "out").resolve()


def test_a_holders_own_processes_work_inside_its_folder(tmp_path):
    with folder_lock(tmp_path / "run", "slamlib run"):
        child = subprocess.run(
            [sys.executable, "-c", "import sys\nfrom slamlib.locks import folder_lock\n"
             "with folder_lock(sys.argv[1] + '/models/pretrained', 'pretraining'): print('in')\n"
             "with folder_lock(sys.argv[1], 'a notebook'): print('in too')", str(tmp_path / "run")],
            capture_output=True, text=True, env={**os.environ, OWNER_ENV: str(os.getpid())})
        assert child.stdout.split() == ["in", "in", "too"], child.stderr
        stranger = subprocess.run(
            [sys.executable, "-c", "import sys\nfrom slamlib.locks import folder_lock\n"
             "with folder_lock(sys.argv[1] + '/models', 'x'): pass", str(tmp_path / "run")],
            capture_output=True, text=True, env={k: v for k, v in os.environ.items() if k != OWNER_ENV})
        assert stranger.returncode == 1 and f"in use by process {os.getpid()} (slamlib run" in stranger.stderr


def test_two_tokenize_commands_on_one_folder(tmp_path, speech):
    """The second `slamlib tokenize` into a folder in use exits 1 at once, names the folder and the
    holder, and leaves the first one's shards alone."""
    from slamlib.audio import write_audio

    audio = tmp_path / "audio"
    for i, (_, _, wav) in enumerate(speech):
        write_audio(audio / f"u{i}.wav", wav)
    out = tmp_path / "units"
    holder = hold(out)
    try:
        (out / "shard-00000.parquet").write_bytes(b"the first command's shard")
        started = time.monotonic()
        result = subprocess.run([sys.executable, "-m", "slamlib", "tokenize", str(audio), "--out", str(out),
                                 "--profile", "tiny", "--quiet"], capture_output=True, text=True)
        assert result.returncode == 1 and time.monotonic() - started < 60
        assert f"{out} is in use by process {holder.pid} (the holder" in result.stderr
        assert "Traceback" not in result.stderr
        assert (out / "shard-00000.parquet").read_bytes() == b"the first command's shard"
        assert sorted(p.name for p in out.iterdir()) == [".slamlib.lock", ".slamlib.owner.json", "shard-00000.parquet"]
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
