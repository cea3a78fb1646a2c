"""The one way out of every video pipeline: frames (or the mp4 they were streamed to), their rate and the audio that
goes with them; and the longest side a pipeline's frames may have.

A pipeline makes its frames as an iterable of uint8 [H, W, 3] and ends its ``__call__`` with :func:`finish_output`::

    frames = self.generate_frames(...)                  # any iterable of uint8 [H, W, 3], in order
    return finish_output(frames, fps, audio, output_path=output_path, output_type=output_type,
                         return_dict=return_dict, num_frames=num_frames, output_class=MyOutput, **my_fields)

which does, in one place:

* streaming: with ``output_path`` every frame goes straight into a :class:`~avdiff.video.writer.VideoWriter` (H.264 +
  AAC with ``audio`` muxed in, written atomically), so memory stays flat in the video's length, and the output holds
  the path instead of the frames;
* allocation: otherwise the frames fill one uint8 array [F, H, W, 3] allocated once (:func:`allocate_frames`, which
  warns above :data:`HUGE_OUTPUT_BYTES`), with no stacking copy;
* conversion for ``output_type`` (:func:`convert_frames`): ``"np"`` the uint8 array, ``"pt"`` the same as a torch
  tensor, ``"pil"`` a list of PIL images. A pipeline with its own types (the talking head's ``"crops"``, the
  text-to-video ``"latent"``) handles them before it calls here, and checks its list with :func:`check_output_type`;
* the audio returned: a ``Waveform`` (or None) as given; an :class:`~avdiff.audio.stream.AudioStream` (the music
  pipeline's song, read block by block) is muxed in as it is read and returned loaded, except a file's stream when the
  frames were streamed: the mp4 carries it, and the output's ``audio`` is None (memory stays flat);
* the tuple form: with ``return_dict=False`` always ``(frames, fps, audio)`` (frames None when streamed).
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from avdiff.audio.io import Waveform
from avdiff.audio.stream import AudioStream
from avdiff.video.errors import VideoError
from avdiff.video.writer import VideoWriter, write_video

logger = logging.getLogger(__name__)

# The longest side, in px, of the frames a pipeline makes. A larger talking-head photo (a 12 MP phone photo is
# 4000x3000) is downscaled to it first (avdiff.pipelines.utils): every frame is the photo's size, and a
# 4000x3000 frame is 36 MB, 17 times a 1080p one, in the paste-back and in the encoder's look-ahead alike. The music
# job checks its sizes against it.
MAX_OUTPUT_SIDE = 1920

# The output types every pipeline offers (a pipeline may add its own).
OUTPUT_TYPES = ("np", "pt", "pil")

HUGE_OUTPUT_BYTES = 4 * 2**30  # warn above this much uint8 output held in memory


@dataclass
class VideoPipelineOutput:
    """What a pipeline returns.

    Attributes:
        frames: uint8 [F, H, W, 3] RGB (``output_type="np"``), or the pipeline's other output types; None when the
            pipeline streamed the video to ``path`` instead (``output_path=...``).
        fps: frames per second (exact).
        audio: the sound the frames go with (the user's audio as given), or None.
        path: the mp4 the frames were streamed to, or None.
        num_frames: F (counted from ``frames`` when they are held).
        warnings: sentences about the inputs that the video was made despite (silent speech, ...), each also
            logged; empty when there is nothing to say. They hold no paths.
    """

    frames: np.ndarray | None
    fps: Fraction
    audio: Waveform | None = None
    path: Path | None = None
    num_frames: int | None = None
    warnings: list[str] = field(default_factory=list)

    def __post_init__(self):
        if self.frames is not None:
            self.num_frames = int(len(self.frames))
        elif self.path is None:
            raise ValueError("a VideoPipelineOutput needs frames or the path they were written to")

    def save(self, path: str | os.PathLike) -> Path:
        """Write an H.264 + AAC mp4 with the audio muxed in (atomically). An output that was streamed to a file is
        copied (nothing is re-encoded)."""
        if self.frames is not None:
            return write_video(path, self.frames, self.fps, self.audio)
        path = Path(path)
        if path.exists() and path.samefile(self.path):
            return path
        if path.is_dir():
            raise VideoError(path, "is a folder; give a file name such as out.mp4")
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=".partial.mp4", dir=path.parent)
        os.close(fd)
        try:
            shutil.copyfile(self.path, tmp)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return path


def check_output_type(output_type: object, allowed: tuple[str, ...] = OUTPUT_TYPES) -> None:
    """ValueError naming ``output_type`` unless it is one of ``allowed`` (a pipeline passes its own list when it adds
    types)."""
    if not isinstance(output_type, str) or output_type not in allowed:
        raise ValueError(f"output_type must be one of {allowed}, got {output_type!r}")


def allocate_frames(num_frames: int, height: int, width: int) -> np.ndarray:
    """The uint8 output [F, H, W, 3], allocated once and filled frame by frame; a warning (with the fix,
    ``output_path=``) when it takes more than :data:`HUGE_OUTPUT_BYTES`."""
    nbytes = num_frames * height * width * 3
    if nbytes > HUGE_OUTPUT_BYTES:
        logger.warning(
            "the output frames take %.1f GiB (%d frames of %dx%d); output_path='out.mp4' streams them "
            "to a file instead of holding them",
            nbytes / 2**30,
            num_frames,
            width,
            height,
        )
    return np.empty((num_frames, height, width, 3), dtype=np.uint8)


def collect_frames(frames: Iterable, num_frames: int | None = None) -> np.ndarray:
    """Frames uint8 [H, W, 3] (numpy arrays, an array [F, H, W, 3], or torch tensors) -> one uint8 array
    [F, H, W, 3]. With ``num_frames`` the array is allocated once at the first frame (:func:`allocate_frames`) and
    filled; otherwise the frames are stacked. ValueError if the iterable gives another number of frames."""
    if isinstance(frames, np.ndarray):
        return frames
    if num_frames is None:
        return np.stack([f.numpy() if isinstance(f, torch.Tensor) else np.asarray(f) for f in frames])
    array = None
    count = 0
    for i, frame in enumerate(frames):
        frame = frame.numpy() if isinstance(frame, torch.Tensor) else np.asarray(frame)
        if array is None:
            array = allocate_frames(num_frames, *frame.shape[:2])
        if i >= num_frames:
            raise ValueError(f"more than the {num_frames} frames announced")
        array[i] = frame
        count = i + 1
    if count != num_frames:
        raise ValueError(f"{count} frames were made, {num_frames} announced")
    return array


def convert_frames(frames: np.ndarray | torch.Tensor, output_type: str = "np"):
    """uint8 frames [F, H, W, 3] (or videos [B, F, H, W, 3]) as ``output_type`` asks: ``"np"`` a numpy array,
    ``"pt"`` a torch uint8 tensor (sharing memory with the array), ``"pil"`` a list of F PIL images (a list of B such
    lists for videos)."""
    check_output_type(output_type)
    if output_type == "pt":
        return frames if isinstance(frames, torch.Tensor) else torch.from_numpy(frames)
    array = frames.numpy() if isinstance(frames, torch.Tensor) else np.asarray(frames)
    if output_type == "np":
        return array
    if array.ndim == 5:
        return [convert_frames(video, "pil") for video in array]
    return [Image.fromarray(f) for f in array]


def returned_audio(audio: Waveform | AudioStream | None, streamed: bool) -> Waveform | None:
    """The audio an output holds: a ``Waveform`` (or None) as it is; an ``AudioStream`` loaded whole, or None when it
    reads a file and the frames were ``streamed`` to an mp4 (which carries it)."""
    if isinstance(audio, AudioStream):
        return None if streamed and audio.path is not None else audio.load()
    return audio


def finish_output(
    frames: Iterable,
    fps,
    audio: Waveform | AudioStream | None = None,
    *,
    output_path: str | os.PathLike | None = None,
    output_type: str = "np",
    return_dict: bool = True,
    num_frames: int | None = None,
    output_class: type[VideoPipelineOutput] = VideoPipelineOutput,
    **fields,
):
    """The end of a pipeline's ``__call__``: stream, or collect and convert, then return.

    Args:
        frames: uint8 frames [H, W, 3] in order (any iterable: a generator keeps memory flat when streaming), or an
            array [F, H, W, 3] / [B, F, H, W, 3] already made.
        fps: the frame rate (returned as it is given).
        audio: the sound the frames go with (muxed into the mp4; returned), or None. An ``AudioStream`` is muxed in
            block by block and returned loaded, or None when it reads a file and the frames were streamed
            (:func:`returned_audio`).
        output_path: stream the frames to this mp4 (:class:`~avdiff.video.writer.VideoWriter`) instead of holding
            them; the output's ``frames`` is then None and ``path`` the file written. Check it before any work with
            :func:`~avdiff.video.writer.check_output_path`.
        output_type: ``"np"``, ``"pt"`` or ``"pil"`` (:func:`convert_frames`); ignored when streaming. A pipeline's
            own type whose frames are still uint8 images (the talking head's ``"crops"``) passes ``"np"``.
        return_dict: return ``output_class(...)``, else the tuple ``(frames, fps, audio)``.
        num_frames: F when known: the array is allocated once (:func:`collect_frames`).
        output_class: :class:`VideoPipelineOutput` or a subclass; ``fields`` are its extra fields.

    Returns:
        ``output_class(frames, fps, audio, path=..., num_frames=..., **fields)`` or ``(frames, fps, audio)``.
    """
    if output_path is not None:
        with VideoWriter(output_path, fps, audio) as out:
            out.write_frames(frames)
        audio = returned_audio(audio, streamed=True)
        if not return_dict:
            return None, fps, audio
        return output_class(frames=None, fps=fps, audio=audio, path=out.path, num_frames=out.num_frames, **fields)
    result = convert_frames(collect_frames(frames, num_frames), output_type)
    audio = returned_audio(audio, streamed=False)
    if not return_dict:
        return result, fps, audio
    return output_class(frames=result, fps=fps, audio=audio, **fields)
