"""The one way out of every video pipeline: frames (or the mp4 they were streamed to), their rate and the audio that
goes with them; and the longest side a pipeline's frames may have.

A pipeline makes its frames in its own loop and pushes each one into a :class:`FrameSink`, then ends its ``__call__``
with :meth:`FrameSink.finish`::

    with FrameSink(fps, audio, output_path=output_path, num_frames=num_frames) as sink:
        for frame in self.generate_frames(...):         # uint8 [H, W, 3], in order
            sink.write(frame)
        return sink.finish(output_type=output_type, return_dict=return_dict, output_class=MyOutput, **my_fields)

(frames already made as one array go through :func:`finish_output`). The sink never calls back into the pipeline: the
pipeline drives, and the sink does, in one place:

* streaming: with ``output_path`` every frame goes straight into a :class:`~avdiff.video.writer.VideoWriter` (H.264 +
  AAC with ``audio`` muxed in, written atomically), so memory stays flat in the video's length, and the output holds
  the path instead of the frames;
* allocation: otherwise the frames fill one uint8 array [F, H, W, 3] allocated once (:func:`allocate_frames`, which
  warns above :data:`HUGE_OUTPUT_BYTES`), with no stacking copy;
* conversion for ``output_type`` (:func:`convert_frames`): ``"np"`` the uint8 array, ``"pt"`` the same as a torch
  tensor, ``"pil"`` a list of PIL images. A pipeline with its own types (the talking head's ``"crops"``, the
  text-to-video ``"latent"``) handles them before it calls here, and checks its list with :func:`check_output_type`;
* the audio returned: a ``Waveform`` (or None) as given; an :class:`~avdiff.audio.io.AudioStream` (the music
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

from avdiff.audio.io import AudioStream, Waveform
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


class FrameSink:
    """Where a pipeline pushes its frames, one at a time, in order (the module docstring): into the mp4 at
    ``output_path`` as they come, or into one array allocated at the first frame.

    Args:
        fps: the frame rate (returned as it is given).
        audio: the sound the frames go with (muxed into the mp4; returned), or None. An ``AudioStream`` is muxed in
            block by block and returned loaded, or None when it reads a file and the frames were streamed
            (:func:`returned_audio`).
        output_path: stream the frames to this mp4 (:class:`~avdiff.video.writer.VideoWriter`) instead of holding
            them; the output's ``frames`` is then None and ``path`` the file written. Check it before any work with
            :func:`~avdiff.video.writer.check_output_path`.
        num_frames: F when known: the array is allocated once at the first frame (:func:`allocate_frames`) and a
            ValueError says when another number of frames arrives; otherwise the frames are stacked at the end.

    Used as a context manager, a partial mp4 is removed when the pipeline raises.
    """

    def __init__(
        self,
        fps,
        audio: Waveform | AudioStream | None = None,
        *,
        output_path: str | os.PathLike | None = None,
        num_frames: int | None = None,
    ):
        self.fps, self.audio, self.num_frames = fps, audio, num_frames
        self._writer = None if output_path is None else VideoWriter(output_path, fps, audio)
        self._array: np.ndarray | None = None
        self._held: list[np.ndarray] = []
        self._count = 0

    def write(self, frame) -> None:
        """One frame, uint8 [H, W, 3] (numpy or torch)."""
        if self._writer is not None:
            self._writer.write(frame)
            return
        frame = frame.numpy() if isinstance(frame, torch.Tensor) else np.asarray(frame)
        if self.num_frames is None:
            self._held.append(frame)
        else:
            if self._array is None:
                self._array = allocate_frames(self.num_frames, *frame.shape[:2])
            if self._count >= self.num_frames:
                raise ValueError(f"more than the {self.num_frames} frames announced")
            self._array[self._count] = frame
        self._count += 1

    def hold(self, frames: np.ndarray) -> None:
        """Frames already made as one array [F, H, W, 3] / [B, F, H, W, 3], held as they are (not streamed)."""
        self._array, self._count, self.num_frames = frames, len(frames), len(frames)

    def collected(self) -> np.ndarray:
        """The frames written, as one uint8 array [F, H, W, 3]; ValueError if another number than ``num_frames``
        arrived."""
        if self.num_frames is None:
            return np.stack(self._held)
        if self._count != self.num_frames:
            raise ValueError(f"{self._count} frames were made, {self.num_frames} announced")
        return self._array

    def finish(
        self,
        *,
        output_type: str = "np",
        return_dict: bool = True,
        output_class: type[VideoPipelineOutput] = VideoPipelineOutput,
        **fields,
    ):
        """The end of a pipeline's ``__call__``: the mp4 closed, or the frames converted, then returned.

        Args:
            output_type: ``"np"``, ``"pt"`` or ``"pil"`` (:func:`convert_frames`); ignored when streaming. A
                pipeline's own type whose frames are still uint8 images (the talking head's ``"crops"``) passes
                ``"np"``.
            return_dict: return ``output_class(...)``, else the tuple ``(frames, fps, audio)``.
            output_class: :class:`VideoPipelineOutput` or a subclass; ``fields`` are its extra fields.

        Returns:
            ``output_class(frames, fps, audio, path=..., num_frames=..., **fields)`` or ``(frames, fps, audio)``.
        """
        if self._writer is not None:
            path = self._writer.close()
            audio = returned_audio(self.audio, streamed=True)
            if not return_dict:
                return None, self.fps, audio
            return output_class(
                frames=None, fps=self.fps, audio=audio, path=path, num_frames=self._writer.num_frames, **fields
            )
        result = convert_frames(self.collected(), output_type)
        audio = returned_audio(self.audio, streamed=False)
        if not return_dict:
            return result, self.fps, audio
        return output_class(frames=result, fps=self.fps, audio=audio, **fields)

    def __enter__(self) -> FrameSink:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is not None and self._writer is not None:
            self._writer.abort()


def collect_frames(frames: Iterable, num_frames: int | None = None) -> np.ndarray:
    """Frames uint8 [H, W, 3] (numpy arrays, an array [F, H, W, 3], or torch tensors) -> one uint8 array
    [F, H, W, 3]. With ``num_frames`` the array is allocated once at the first frame (:func:`allocate_frames`) and
    filled; otherwise the frames are stacked. ValueError if the iterable gives another number of frames."""
    if isinstance(frames, np.ndarray):
        return frames
    sink = FrameSink(None, num_frames=num_frames)
    for frame in frames:
        sink.write(frame)
    return sink.collected()


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
    """Frames already made (an array [F, H, W, 3] / [B, F, H, W, 3], or a list), through a :class:`FrameSink`:
    streamed, or collected and converted, then returned. A pipeline that makes its frames one by one pushes them into
    a :class:`FrameSink` in its own loop instead.

    Args:
        frames: uint8 frames [H, W, 3] in order, or an array [F, H, W, 3] / [B, F, H, W, 3] (held as it is unless
            streamed).
        fps, audio, output_path, num_frames: as :class:`FrameSink` takes them.
        output_type, return_dict, output_class, fields: as :meth:`FrameSink.finish` takes them.

    Returns:
        ``output_class(frames, fps, audio, path=..., num_frames=..., **fields)`` or ``(frames, fps, audio)``.
    """
    with FrameSink(fps, audio, output_path=output_path, num_frames=num_frames) as sink:
        if output_path is None and isinstance(frames, np.ndarray):
            sink.hold(frames)
        else:
            for frame in frames:
                sink.write(frame)
        return sink.finish(output_type=output_type, return_dict=return_dict, output_class=output_class, **fields)
