"""Real-world variants of a talking-head clip, built by the tests themselves (issue 13).

Everything starts from ``skimage.data.astronaut()`` and about 10 s of espeak-ng speech with two 1.5 s pauses, and is
turned into what users' files look like with the ffmpeg command-line tool, the way the issue made them:

* ``talk_ref.mp4``: ``avdiff talk --baseline`` on the photo and the speech (in sync: offset 0);
* ``vfr.mp4``: 30 frames dropped from the middle, timestamps kept (variable frame rate);
* ``rot{90,180,270}.mp4``: the frames turned the other way and a display rotation that turns them back;
* ``small_face.mp4``: the 512 px video padded onto 1280x720 (a face of about 100 px);
* ``two_faces.mp4``: the talking face at 360 px on the left, a still copy at 400 px on the right;
* ``anti_phase.wav``: stereo whose right channel is the left one inverted (a mono downmix cancels);
* ``speech44k_stereo.wav``: the speech at 44.1 kHz in two channels that differ.

Files are made once per test session, in a folder the caller gives (``RealWorld(tmp_path_factory.mktemp(...))``);
each is built on first use. Tests that need them skip when espeak-ng or ffmpeg is missing.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
import torch

from avdiff.audio.io import Waveform, save_audio

SENTENCES = (
    "Please call Stella and ask her to bring these things.",
    "Six spoons of fresh snow peas and a big blue cheese.",
    "We also need a small plastic snake for the kids.",
)
PAUSE_S = 1.5
SAMPLE_RATE = 16000


def tools_missing() -> str | None:
    """Why the real-world media cannot be built here (a missing program), or None."""
    from avdiff.audio.tts import espeak_available

    if not espeak_available():
        return "needs espeak-ng (apt-get install espeak-ng)"
    if shutil.which("ffmpeg") is None:
        return "needs the ffmpeg command-line tool (apt-get install ffmpeg)"
    return None


def ffmpeg(*args: str) -> None:
    """Run the ffmpeg CLI quietly; raise with its error output when it fails."""
    proc = subprocess.run(
        ["ffmpeg", "-hide_banner", "-loglevel", "error", "-y", *args], capture_output=True, text=True
    )
    if proc.returncode != 0:
        raise RuntimeError(f"ffmpeg {' '.join(args)} failed: {proc.stderr.strip()}")


def speech_with_pauses(sample_rate: int = SAMPLE_RATE) -> tuple[Waveform, list[tuple[float, float]]]:
    """About 10 s of espeak-ng speech: three sentences with a 1.5 s pause between them. Mono float32 [1, N].

    Returns the waveform and the pauses as ``(start_s, end_s)``.
    """
    from avdiff.audio.tts import speak

    parts, pauses, t = [], [], 0.0
    for k, text in enumerate(SENTENCES):
        wav = speak(text, speed_wpm=190, sample_rate=sample_rate).samples
        parts.append(wav)
        t += wav.shape[1] / sample_rate
        if k + 1 < len(SENTENCES):
            parts.append(torch.zeros(1, round(PAUSE_S * sample_rate)))
            pauses.append((t, t + PAUSE_S))
            t += PAUSE_S
    return Waveform(torch.cat(parts, dim=1), sample_rate), pauses


class RealWorld:
    """The variants above, built lazily under ``folder``. Attributes are paths."""

    def __init__(self, folder: str | Path):
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)

    def _path(self, name: str) -> tuple[Path, bool]:
        path = self.folder / name
        return path, path.is_file()

    @property
    def face_png(self) -> Path:
        path, done = self._path("face.png")
        if not done:
            import skimage.data
            from PIL import Image

            Image.fromarray(skimage.data.astronaut()).save(path)
        return path

    @property
    def speech(self) -> Waveform:
        if not hasattr(self, "_speech"):
            self._speech, self.pauses = speech_with_pauses()
        return self._speech

    @property
    def speech16k_wav(self) -> Path:
        path, done = self._path("speech16k.wav")
        if not done:
            save_audio(path, self.speech)
        return path

    @property
    def talk_ref_mp4(self) -> Path:
        """The warp baseline on the photo and the speech, as ``avdiff talk --baseline`` writes it."""
        path, done = self._path("talk_ref.mp4")
        if not done:
            from avdiff.pipelines.talking_head import WarpBaselinePipeline

            pipe = WarpBaselinePipeline()
            pipe.set_progress_bar_config(disable=True)
            pipe(str(self.face_png), str(self.speech16k_wav), output_path=path)
        return path

    @property
    def vfr_mp4(self) -> Path:
        """Frames 100..129 dropped, the others keep their timestamps (plays in sync)."""
        path, done = self._path("vfr.mp4")
        if not done:
            ffmpeg(
                "-i",
                str(self.talk_ref_mp4),
                "-vf",
                "select='not(between(n,100,129))'",
                "-fps_mode",
                "vfr",
                "-c:v",
                "libx264",
                "-c:a",
                "copy",
                str(path),
            )
        return path

    def rotated_mp4(self, degrees: int) -> Path:
        """Frames stored turned, with the display rotation ``ffmpeg -metadata:s:v:0 rotate=DEGREES`` writes and that
        turns them back: players (ffmpeg's autorotate) show it upright. FFmpeg stores ``rotate=90`` as a display
        matrix that turns the picture 90 degrees counter-clockwise, so those frames are stored turned clockwise."""
        path, done = self._path(f"rot{degrees}.mp4")
        if not done:
            turn = {90: "transpose=1", 180: "transpose=1,transpose=1", 270: "transpose=2"}[degrees]
            stored = self.folder / f".stored{degrees}.mp4"
            ffmpeg("-i", str(self.talk_ref_mp4), "-vf", turn, "-c:v", "libx264", "-c:a", "copy", str(stored))
            ffmpeg("-i", str(stored), "-metadata:s:v:0", f"rotate={degrees}", "-c", "copy", str(path))
            stored.unlink()
        return path

    @property
    def small_face_mp4(self) -> Path:
        """The 512 px talking video padded onto 1280x720: the face (its landmark box) is about 100 px, a twelfth of
        the frame's width."""
        path, done = self._path("small_face.mp4")
        if not done:
            ffmpeg(
                "-i",
                str(self.talk_ref_mp4),
                "-vf",
                "pad=1280:720:700:150",
                "-c:v",
                "libx264",
                "-c:a",
                "copy",
                str(path),
            )
        return path

    @property
    def small_face_png(self) -> Path:
        """The photo pasted onto a 1280x720 grey still, as ``small_face.mp4``: a face of about 100 px."""
        path, done = self._path("small_face.png")
        if not done:
            import skimage.data
            from PIL import Image

            canvas = Image.new("RGB", (1280, 720), (90, 90, 90))
            canvas.paste(Image.fromarray(skimage.data.astronaut()), (700, 150))
            canvas.save(path)
        return path

    @property
    def two_faces_mp4(self) -> Path:
        """The talking video at 360 px on the left of an 840x420 frame, a still copy at 400 px on the right."""
        path, done = self._path("two_faces.mp4")
        if not done:
            graph = (
                "[0:v]scale=360:360,pad=840:420:20:30[talk];[1:v]scale=400:400[still];"
                "[talk][still]overlay=430:10:shortest=1[v]"
            )
            ffmpeg(
                "-i",
                str(self.talk_ref_mp4),
                "-loop",
                "1",
                "-i",
                str(self.face_png),
                "-filter_complex",
                graph,
                "-map",
                "[v]",
                "-map",
                "0:a",
                "-c:v",
                "libx264",
                "-c:a",
                "copy",
                "-shortest",
                str(path),
            )
        return path

    @property
    def anti_phase_wav(self) -> Path:
        """The speech in stereo with the right channel inverted, as ``sox -M speech.wav "|sox speech.wav -p vol -1"``
        makes it: the mean of the two channels is silence."""
        path, done = self._path("anti_phase.wav")
        if not done:
            mono = self.speech.samples
            save_audio(path, Waveform(torch.cat([mono, -mono]), SAMPLE_RATE))
        return path

    @property
    def speech44k_stereo_wav(self) -> Path:
        """The speech at 44.1 kHz, the right channel 0.6 times the left and 1 ms later (so the channels differ)."""
        path, done = self._path("speech44k_stereo.wav")
        if not done:
            left = self.speech.resample(44100).samples
            right = 0.6 * torch.nn.functional.pad(left, (44, 0))[:, : left.shape[1]]
            save_audio(path, Waveform(torch.cat([left, right]), 44100))
        return path


def drum_wav(path: Path, bpm: float = 120.0, seconds: float = 12.0, anti_phase: bool = False) -> Path:
    """A synthesized drum groove (``avdiff.audio.synth.drum_track``) as a 44.1 kHz stereo wav; with ``anti_phase``
    the right channel is the left one inverted."""
    from avdiff.audio.synth import drum_track

    left = drum_track(bpm, duration_s=seconds, sample_rate=44100).waveform.samples
    right = -left if anti_phase else left
    return save_audio(path, Waveform(torch.cat([left, right]), 44100))


def first_frame(path: Path) -> np.ndarray:
    """The first frame of a video as ffmpeg's player would show it (rotation applied), uint8 [H, W, 3]."""
    proc = subprocess.run(
        ["ffmpeg", "-v", "error", "-i", str(path), "-frames:v", "1", "-f", "rawvideo", "-pix_fmt", "rgb24", "-"],
        capture_output=True,
        check=True,
    )
    probe = subprocess.run(
        [
            "ffprobe",
            "-v",
            "error",
            "-select_streams",
            "v:0",
            "-show_entries",
            "stream=width,height:stream_side_data=rotation",
            "-of",
            "csv=p=0",
            str(path),
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    values = [int(v) for v in probe.replace("\n", ",").split(",") if v.strip().lstrip("-").isdigit()]
    width, height = values[0], values[1]
    if len(values) > 2 and values[2] % 180:
        width, height = height, width
    return np.frombuffer(proc.stdout, np.uint8).reshape(height, width, 3)
