"""Text to speech behind one small interface, 16 kHz mono float32 out.

`EspeakTTS` is the offline backend: espeak-ng from the `espeakng-loader` wheel (it ships the
library and its voice data; no system packages). A voice (`Voice`, a setting kept in
`slamlib.profiles`) is an espeak voice name with an optional variant (`en-us`, `en` (British),
`en-us+f3`, `en+m3`), a rate in words per minute and a pitch (0-100). A neural backend (such as
Kokoro, which SpokenSwag used) fits the same interface: an object with
`synthesize(text, voice) -> np.ndarray` at 16 kHz.

espeak-ng carries synthesis state from one utterance to the next, so the same sentence read twice
in one process differs. Synthesis therefore runs in worker processes (`slamlib.data._espeak_worker`)
that start every utterance from the same freshly initialised state: a given (text, voice) always
gives the same samples, in any order, in any process. Several workers synthesize in parallel.
"""

from __future__ import annotations

import json
import struct
import subprocess
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Iterable, Protocol

import numpy as np

from slamlib.audio import SAMPLE_RATE, resample
from slamlib.data import _espeak_worker
from slamlib.profiles import Voice


class TTS(Protocol):
    def synthesize(self, text: str, voice: Voice) -> np.ndarray: ...


def _widen_pipe(stream) -> None:
    """Let a whole utterance (hundreds of kB) sit in the pipe at once (Linux; elsewhere a no-op):
    far fewer context switches than the default 64 kB."""
    try:
        import fcntl

        fcntl.fcntl(stream.fileno(), getattr(fcntl, "F_SETPIPE_SZ", 1031), 1 << 20)
    except (ImportError, OSError):
        pass


class _Worker:
    """One espeak-ng worker process and the lock that serialises its requests."""

    def __init__(self):
        self.lock = threading.Lock()
        self.proc = subprocess.Popen(
            [sys.executable, str(Path(_espeak_worker.__file__))],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE,
        )
        _widen_pipe(self.proc.stdout)
        hello = _espeak_worker.read_message(self.proc.stdout)
        if hello is None or int(hello) <= 0:
            raise RuntimeError("espeak-ng failed to start (is the espeakng-loader package installed?)")
        self.native_rate = int(hello)

    def request(self, text: str, voice: Voice) -> tuple[np.ndarray, list]:
        payload = json.dumps({"text": text, "voice": voice.name, "rate": voice.rate, "pitch": voice.pitch})
        with self.lock:
            _espeak_worker.write_message(self.proc.stdin, payload.encode())
            reply = _espeak_worker.read_message(self.proc.stdout)
        if reply is None:
            raise RuntimeError("the espeak-ng worker exited unexpectedly")
        if reply[:2] != b"ok":
            message = reply[2:].decode(errors="replace")
            if "has no voice" in message:
                raise ValueError(f"{message} (try en-us, en (British), en-us+f3, en+m3, en-gb-x-rp)")
            raise RuntimeError(f"{message} on text {text[:60]!r}")
        (size,) = struct.unpack(">I", reply[2:6])
        events = json.loads(reply[6 : 6 + size])
        pcm = np.frombuffer(reply[6 + size :], dtype=np.int16).astype(np.float32) / 32768.0
        return pcm, events

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.stdin.close()
            self.proc.wait(timeout=10)


class EspeakTTS:
    """Offline, deterministic speech from espeak-ng.

    >>> tts = EspeakTTS()
    >>> wav = tts.synthesize("Hello there.", Voice("en-us"))
    >>> wav.dtype, 0.5 < len(wav) / 16_000 < 2.0
    (dtype('float32'), True)
    >>> bool((tts.synthesize("Hello there.", Voice("en-us")) == wav).all())
    True
    """

    sample_rate = SAMPLE_RATE

    def __init__(self, workers: int = 1):
        self.n_workers = max(1, workers)
        self._workers: list[_Worker] = []
        self._start_lock = threading.Lock()
        self._next = 0

    def _worker(self) -> _Worker:
        with self._start_lock:
            if len(self._workers) < self.n_workers:
                self._workers.append(_Worker())
                return self._workers[-1]
            self._next = (self._next + 1) % len(self._workers)
            return self._workers[self._next]

    def synthesize(self, text: str, voice: Voice = Voice()) -> np.ndarray:
        return self.synthesize_aligned(text, voice)[0]

    def synthesize_aligned(self, text: str, voice: Voice = Voice()) -> tuple[np.ndarray, list[dict]]:
        """The waveform and its words with start and end times in seconds (sTinyStories'
        `aligned_text`): a word ends where the next begins, the last where the audio does."""
        if not text.strip():
            raise ValueError("cannot synthesize empty text")
        worker = self._worker()
        wav, events = worker.request(text, voice)
        if wav.size == 0:
            raise RuntimeError(f"espeak-ng produced no audio for {text[:60]!r} with voice {voice}")
        seconds = len(wav) / worker.native_rate
        encoded = text.encode("utf-8")
        starts = [ms / 1000 for _, _, ms in events] + [seconds]
        words = [{"word": encoded[pos - 1 : pos - 1 + length].decode("utf-8", "replace"),
                  "start_time": round(starts[i], 3), "end_time": round(starts[i + 1], 3)}
                 for i, (pos, length, _) in enumerate(events)]
        return resample(wav, worker.native_rate, SAMPLE_RATE), words

    def synthesize_many(self, jobs: Iterable[tuple[str, Voice]], aligned: bool = False) -> Iterable:
        """Waveforms (or (waveform, words) with aligned=True) for (text, voice) pairs, in order,
        using all workers in parallel."""
        call = self.synthesize_aligned if aligned else self.synthesize
        with ThreadPoolExecutor(max_workers=self.n_workers) as pool:
            yield from pool.map(lambda job: call(*job), jobs)

    def close(self) -> None:
        for worker in self._workers:
            worker.close()
        self._workers.clear()

    def __del__(self):
        try:
            self.close()
        except Exception:
            pass
