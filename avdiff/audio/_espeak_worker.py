"""One synthesis with libespeak-ng's phoneme events, in a process of its own (run as a script; standard library only).

libespeak-ng keeps state from one synthesis to the next inside a process (the second "pa pa pa" is a few samples
longer than the first), and ``espeak_Terminate`` then ``espeak_Initialize`` hangs on 1.51. A fresh process per
utterance gives what the espeak-ng program gives, bit for bit. :mod:`avdiff.audio.phonemes` runs this file as
``python -I _espeak_worker.py LIBRARY VOICE RATE PITCH WORDGAP`` with the UTF-8 text on stdin.

Output on stdout: one JSON line ``{"rate": 22050, "events": [[mnemonic, sample], ...]}`` then the samples, int16
little-endian. Exit status 3 with a message on stderr: the library cannot be loaded; 4: unknown voice; 5: failed.
"""

import ctypes
import json
import logging
import sys

logger = logging.getLogger(__name__)

AUDIO_OUTPUT_SYNCHRONOUS = 2
INITIALIZE_PHONEME_EVENTS = 0x0001
EVENT_LIST_TERMINATED, EVENT_PHONEME = 0, 7
POS_CHARACTER = 1
FLAGS = 0x1 | 0x100 | 0x1000  # espeakCHARS_UTF8 | espeakPHONEMES | espeakENDPAUSE: the program's flags with -b 1
RATE, PITCH, WORDGAP = 1, 3, 7  # espeak_PARAMETER


class Voice(ctypes.Structure):
    """espeak_VOICE: what espeak_SetVoiceByProperties selects by (here only the language, with a +variant)."""

    _fields_ = [("name", ctypes.c_char_p), ("languages", ctypes.c_char_p), ("identifier", ctypes.c_char_p),
                ("gender", ctypes.c_ubyte), ("age", ctypes.c_ubyte), ("variant", ctypes.c_ubyte),
                ("xx1", ctypes.c_ubyte), ("score", ctypes.c_int), ("spare", ctypes.c_void_p)]  # fmt: skip


class EventId(ctypes.Union):
    _fields_ = [("number", ctypes.c_int), ("name", ctypes.c_char_p), ("string", ctypes.c_char * 8)]


class Event(ctypes.Structure):
    """``espeak_EVENT`` of speak_lib.h (40 bytes on x86_64: ``user_data`` is 8-aligned at offset 24)."""

    _fields_ = [
        ("type", ctypes.c_int),
        ("unique_identifier", ctypes.c_uint),
        ("text_position", ctypes.c_int),
        ("length", ctypes.c_int),
        ("audio_position", ctypes.c_int),  # milliseconds
        ("sample", ctypes.c_int),  # sample index from the start of the utterance
        ("user_data", ctypes.c_void_p),
        ("id", EventId),
    ]


Callback = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.POINTER(Event))


def fail(status, message):
    sys.stderr.write(message + "\n")
    sys.exit(status)


def main(argv):
    library, voice, rate, pitch, wordgap = argv[1], argv[2], int(argv[3]), int(argv[4]), int(argv[5])
    text = sys.stdin.buffer.read()
    try:
        lib = ctypes.CDLL(library)
    except OSError as e:
        fail(3, str(e))
    lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
    lib.espeak_SetSynthCallback.argtypes = [Callback]
    lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
    lib.espeak_SetParameter.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
    lib.espeak_Synth.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_uint, ctypes.c_int, ctypes.c_uint,
                                 ctypes.c_uint, ctypes.c_void_p, ctypes.c_void_p]  # fmt: skip
    sample_rate = lib.espeak_Initialize(AUDIO_OUTPUT_SYNCHRONOUS, 0, None, INITIALIZE_PHONEME_EVENTS)
    if sample_rate <= 0:
        fail(5, f"espeak_Initialize failed ({sample_rate}): espeak-ng-data not found?")
    audio, events = [], []

    def on_audio(wav, num_samples, event):
        if num_samples > 0 and wav:
            audio.append(ctypes.string_at(wav, 2 * num_samples))
        i = 0
        while event[i].type != EVENT_LIST_TERMINATED:
            if event[i].type == EVENT_PHONEME:
                events.append([event[i].id.string.decode("utf-8", "replace"), event[i].sample])
            i += 1
        return 0

    callback = Callback(on_audio)
    lib.espeak_SetSynthCallback(callback)
    lib.espeak_SetVoiceByProperties.argtypes = [ctypes.POINTER(Voice)]
    # as the espeak-ng program does with -v: a voice's name or file first, else a language ("en-gb", with "+m5")
    if lib.espeak_SetVoiceByName(voice.encode("utf-8")) != 0:
        by_language = Voice(languages=voice.encode("utf-8"))
        if lib.espeak_SetVoiceByProperties(ctypes.byref(by_language)) != 0:
            fail(4, f"voice {voice!r} does not exist")
    for parameter, value in ((RATE, rate), (PITCH, pitch), (WORDGAP, wordgap)):
        if lib.espeak_SetParameter(parameter, value, 0) != 0:
            fail(5, f"espeak_SetParameter({parameter}, {value}) failed")
    data = text + b"\0"
    buffer = ctypes.create_string_buffer(data, len(data))
    status = lib.espeak_Synth(buffer, len(data), 0, POS_CHARACTER, 0, FLAGS, None, None)
    lib.espeak_Synchronize()
    if status != 0:
        fail(5, f"espeak_Synth failed (status {status})")
    out = sys.stdout.buffer
    out.write(json.dumps({"rate": sample_rate, "events": events}).encode("utf-8") + b"\n")
    out.write(b"".join(audio))  # int16 in the machine's order: little-endian on x86_64 and arm64
    out.flush()


if __name__ == "__main__":
    main(sys.argv)
