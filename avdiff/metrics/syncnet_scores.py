"""LSE-D, LSE-C and the audio offset of a video, from a SyncNet-style model, computed as syncnet_python does.

For a clip of ``F`` frames the model embeds every five-frame video window (centred on frames ``2 .. F-3``) and the
audio window of the same frames. For each offset ``k`` in ``[-K, K]`` (``K = max_offset``, 15 by default) and each
video window ``i``, the distance ``d[i, k] = |v_i - a_{i+k}|`` is taken, with audio embeddings past either end of
the clip counted as zero vectors (syncnet_python pads its audio features with ``K`` zeros on each side, so part of a
clip whose sound is shifted out of the picture counts as out of sync). Then, as in syncnet_python's
``SyncNetInstance.evaluate``:

* ``mean_dist[k]`` is the mean over frames of ``d[i, k]``;
* **LSE-D** is the minimum over offsets of ``mean_dist`` (lower is better);
* **LSE-C** (confidence) is the median over offsets of ``mean_dist`` minus that minimum (higher is better);
* the **offset** is the ``k`` of the minimum.

Sign convention, as in :mod:`avdiff.metrics.lipsync`: ``offset_frames = +k`` means the AUDIO LAGS the video by ``k``
frames (the sound of frame ``i`` is heard at frame ``i + k``; delaying the audio by 200 ms at 25 fps gives +5).
syncnet_python prints the opposite sign (its ``offset = vshift - argmin``).

The numbers depend on the model: embeddings here are unit norm, so distances lie in [0, 2] and are not comparable
with those of syncnet_python's pretrained (unnormalised) model. Compare videos scored by the same checkpoint.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field

import numpy as np
import torch

from avdiff.audio.clock import FrameClock
from avdiff.audio.io import Waveform
from avdiff.models.syncnet import SyncNet

logger = logging.getLogger(__name__)


class TooFewFramesError(ValueError):
    """A clip with fewer frames that have audio than one SyncNet window (five frames): nothing to score."""


@dataclass
class SyncScores:
    """SyncNet scores of one clip (see the module docstring).

    Attributes:
        lse_d: minimum over offsets of the mean distance (lower: better sync).
        lse_c: median over offsets of the mean distance, minus ``lse_d`` (higher: more confident sync).
        offset_frames: the offset of the minimum; ``+k``: the audio lags the video by ``k`` frames.
        dist_at_zero: the mean distance at offset 0.
        mean_dists: ``{k: mean distance}`` for every offset searched.
        num_windows: video windows scored.
    """

    lse_d: float
    lse_c: float
    offset_frames: int
    dist_at_zero: float
    mean_dists: dict[int, float] = field(default_factory=dict)
    num_windows: int = 0

    def to_dict(self) -> dict:
        """JSON-ready: floats rounded to 6 places, ``mean_dists`` keyed by ``str(k)``."""
        return {
            "lse_d": round(self.lse_d, 6),
            "lse_c": round(self.lse_c, 6),
            "offset_frames": int(self.offset_frames),
            "dist_at_zero": round(self.dist_at_zero, 6),
            "mean_dists": {str(k): round(v, 6) for k, v in self.mean_dists.items()},
            "num_windows": int(self.num_windows),
        }


def offset_distances(video: torch.Tensor, audio: torch.Tensor, max_offset: int = 15) -> torch.Tensor:
    """Per-frame distances at every offset, as syncnet_python's ``calc_pdist``.

    Args:
        video: [N, D] embeddings of the video windows.
        audio: [N, D] embeddings of the audio windows of the same frames.
        max_offset: K; offsets ``-K .. K`` are searched.

    Returns:
        [N, 2K + 1]: entry ``[i, k + K]`` is ``|video[i] - audio[i + k]|``, with ``audio`` zero outside ``0 .. N-1``.
    """
    if video.shape != audio.shape or video.ndim != 2:
        raise ValueError(f"video and audio must both be [N, D], got {tuple(video.shape)} and {tuple(audio.shape)}")
    if int(max_offset) != max_offset or max_offset < 0:
        raise ValueError(f"max_offset must be an integer number of frames >= 0, got {max_offset!r}")
    n, k = video.shape[0], int(max_offset)
    padded = torch.nn.functional.pad(audio, (0, 0, k, k))  # (N + 2K, D)
    index = torch.arange(n)[:, None] + torch.arange(2 * k + 1)[None, :]  # (N, 2K+1): audio row i + offset + K
    return torch.nn.functional.pairwise_distance(video[:, None, :].expand(-1, 2 * k + 1, -1), padded[index])


def scores_from_embeddings(video: torch.Tensor, audio: torch.Tensor, max_offset: int = 15) -> SyncScores:
    """LSE-D, LSE-C and the offset from window embeddings [N, D] of the same frames (see the module docstring)."""
    if video.shape[0] < 1:
        raise ValueError("no windows to score: the clip needs at least 5 frames")
    dists = offset_distances(video.float().cpu(), audio.float().cpu(), max_offset)
    mean = dists.mean(dim=0)  # (2K+1,)
    min_value, min_index = torch.min(mean, dim=0)
    k = int(max_offset)
    return SyncScores(
        lse_d=float(min_value),
        lse_c=float(torch.median(mean) - min_value),
        offset_frames=int(min_index) - k,
        dist_at_zero=float(mean[k]),
        mean_dists={o - k: float(v) for o, v in enumerate(mean.tolist())},
        num_windows=int(video.shape[0]),
    )


def shift_audio(audio: Waveform, frames: int, fps: float = 25) -> Waveform:
    """Delay (``frames > 0``) or advance (``frames < 0``) the audio by whole video frames, keeping its length.

    A delay pads silence at the start and cuts the end: the result's audio lags the video by ``frames`` frames, which
    the scores report as ``offset_frames = +frames``.
    """
    clock = FrameClock(fps, audio.sample_rate)
    n = clock.num_samples(abs(int(frames)))
    x = audio.samples
    if n == 0:
        return audio
    if n >= x.shape[1]:
        return Waveform(torch.zeros_like(x), audio.sample_rate)
    pad = torch.zeros(x.shape[0], n, dtype=x.dtype)
    shifted = torch.cat([pad, x[:, :-n]], dim=1) if frames > 0 else torch.cat([x[:, n:], pad], dim=1)
    return Waveform(shifted, audio.sample_rate)


def syncnet_scores(
    model, crops: np.ndarray, audio: Waveform, *, max_offset: int = 15, batch_size: int = 256
) -> SyncScores:
    """Score aligned face crops against speech.

    Args:
        model: a :class:`avdiff.models.syncnet.SyncNet`.
        crops: aligned face crops uint8 [F, S, S, 3] at the model's fps
            (see :func:`avdiff.evaluation.syncnet.face_crops_for`).
        audio: the speech of those frames (any rate; made mono).
        max_offset: K, offsets ``-K .. K`` frames are searched (syncnet_python's ``vshift``).
        batch_size: windows per forward pass.

    Returns:
        :class:`SyncScores` over the frames that have both video and audio.

    Raises:
        TooFewFramesError: fewer frames with audio than one window.
    """
    return score_faces(model, model.lower_faces(crops), audio, max_offset=max_offset, batch_size=batch_size)


@torch.no_grad()
def score_faces(
    model, faces: torch.Tensor, audio: Waveform, *, max_offset: int = 15, batch_size: int = 256
) -> SyncScores:
    """:func:`syncnet_scores` from the model's lower faces uint8 [F, h, w] (``model.lower_faces(crops)``), so that
    one clip can be scored against several audio tracks without redoing the crops."""
    model.eval()
    device = model.logit_scale.device
    audio = audio.resample(model.config.sample_rate)
    num_frames = min(len(faces), audio.num_samples * model.config.fps // model.config.sample_rate)
    if num_frames < model.config.window:
        raise TooFewFramesError(
            f"the clip has {num_frames} frames with audio; at least {model.config.window} are needed"
        )
    if len(faces) != num_frames:
        logger.info("scoring the first %d of %d frames (the audio is shorter)", num_frames, len(faces))
    c = model.config.context
    mels = model.mel_windows(audio, num_frames)[c : num_frames - c]  # (N, n_mels, W)
    windows = model.video_windows(faces[None, :num_frames].to(device))[0]  # (N, window, h, w)
    video = torch.cat([model.embed_video(w) for w in windows.split(batch_size)])
    speech = torch.cat([model.embed_audio(m) for m in mels.split(batch_size)])
    return scores_from_embeddings(video, speech, max_offset)


def load_syncnet(path: str | os.PathLike, device: str | torch.device | None = None):
    """A trained :class:`~avdiff.models.syncnet.SyncNet` from its folder, in eval mode on ``device`` (CPU default)."""
    return SyncNet.from_pretrained(path).to(device or "cpu")
