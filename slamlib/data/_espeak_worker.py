"""The espeak-ng worker process behind `slamlib.data.tts.EspeakTTS` (standard library + ctypes only).

espeak-ng keeps synthesis state in C globals that survive from one utterance to the next (and
even `espeak_Terminate` / `espeak_Initialize`): the same text read twice comes out different. To
make every utterance a pure function of (text, voice, rate, pitch), this process initialises
espeak-ng once and never synthesizes itself; it forks a child per request, and the child, starting
from that pristine state, loads the requested voice, fixes the noise seed, synthesizes and exits.

Protocol on stdin/stdout: each message is a 4-byte big-endian length and a payload. The worker
first sends its native sample rate (ASCII). A request is JSON {text, voice, rate, pitch}; the reply
is b"ok", a 4-byte length, a JSON list of word events [text start, text length, audio ms], then
16-bit PCM; or b"er" + an error message.
"""

from __future__ import annotations

import ctypes
import gc
import json
import os
import struct
import sys

_AUDIO_OUTPUT_SYNCHRONOUS = 2
_CHARS_UTF8 = 1
_PARAM_RATE, _PARAM_PITCH = 1, 3
_EE_OK = 0
_EVENT_LIST_TERMINATED, _EVENT_WORD = 0, 1


class _Event(ctypes.Structure):  # espeak_EVENT
    _fields_ = [("type", ctypes.c_int), ("unique_identifier", ctypes.c_uint), ("text_position", ctypes.c_int),
                ("length", ctypes.c_int), ("audio_position", ctypes.c_int), ("sample", ctypes.c_int),
                ("user_data", ctypes.c_void_p), ("id", ctypes.c_char * 8)]


def read_message(stream) -> bytes | None:
    header = stream.read(4)
    if len(header) < 4:
        return None
    (size,) = struct.unpack(">I", header)
    data = stream.read(size)
    if len(data) < size:
        raise EOFError("truncated message")
    return data


def write_message(stream, data: bytes) -> None:
    stream.write(struct.pack(">I", len(data)) + data)
    stream.flush()


def _synthesize(lib, chunks: list, words: list, request: dict) -> bytes:
    lib.espeak_SetParameter(_PARAM_RATE, int(request["rate"]), 0)
    lib.espeak_SetParameter(_PARAM_PITCH, int(request["pitch"]), 0)
    # espeak-ng seeds its noise generator from the clock at start-up: fix it per utterance
    lib.espeak_ng_SetRandSeed(0)
    text = request["text"].encode("utf-8")
    status = lib.espeak_Synth(text, len(text) + 1, 0, 0, 0, _CHARS_UTF8, None, None)
    if status != _EE_OK:
        return b"er" + f"espeak-ng failed with status {status}".encode()
    events = json.dumps(words).encode()
    return b"ok" + struct.pack(">I", len(events)) + events + b"".join(chunks)


def main() -> None:
    import espeakng_loader

    lib = ctypes.cdll.LoadLibrary(espeakng_loader.get_library_path())
    lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
    # a 1 s synthesis buffer: ten times fewer callbacks into Python than the default
    rate = lib.espeak_Initialize(_AUDIO_OUTPUT_SYNCHRONOUS, 1000, espeakng_loader.get_data_path().encode(), 0)
    chunks: list[bytes] = []
    words: list[list[int]] = []
    callback_type = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int,
                                     ctypes.POINTER(_Event))

    def collect(samples, n, events):
        if n > 0:
            chunks.append(ctypes.string_at(samples, 2 * n))
        i = 0
        while events and events[i].type != _EVENT_LIST_TERMINATED:
            if events[i].type == _EVENT_WORD:
                words.append([events[i].text_position, events[i].length, events[i].audio_position])
            i += 1
        return 0

    callback = callback_type(collect)
    lib.espeak_SetSynthCallback(callback)
    stdin, stdout = sys.stdin.buffer, sys.stdout.buffer
    write_message(stdout, str(rate).encode())
    # The voice is loaded in the child, never here: loading voices one after another leaves
    # traces in espeak-ng's globals, so a parent that switched voices would hand each child a
    # state that depends on which voices came before (and, with several workers, on which worker
    # got which request): the same text and voice came out different from run to run.
    gc.collect()
    gc.freeze()  # children then copy fewer pages: their Python objects are never collected
    gc.disable()
    while (message := read_message(stdin)) is not None:
        request = json.loads(message)
        pid = os.fork()
        if pid == 0:  # child: load the voice, synthesize from the pristine state, reply on stdout itself, exit
            try:
                if lib.espeak_SetVoiceByName(request["voice"].encode()) != _EE_OK:
                    reply = b"er" + f"espeak-ng has no voice {request['voice']!r}".encode()
                else:
                    reply = _synthesize(lib, chunks, words, request)
            except Exception as err:  # report, never hang the reader
                reply = b"er" + repr(err).encode()
            view = memoryview(struct.pack(">I", len(reply)) + reply)
            while view:
                view = view[os.write(stdout.fileno(), view):]
            os._exit(0)
        _, status = os.waitpid(pid, 0)  # requests are sequential: the child's reply is complete
        if status != 0:
            write_message(stdout, b"er" + b"the synthesis process died")


if __name__ == "__main__":
    main()
