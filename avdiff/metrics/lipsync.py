"""Lip-sync scores: how well mouth openness follows the loudness of speech, and at which audio offset.

Inputs are per-video-frame signals: mouth openness [F] (from :func:`avdiff.metrics.mouth.mouth_openness`, NaN where
no face was found) and the speech envelope [F] (from :func:`avdiff.audio.envelope.speech_envelope`). A talking
mouth opens as speech gets loud, so in-sync video correlates positively with the envelope at offset 0. Mouth
aperture usually leads or matches the loudness by a frame or so; that is normal.

Sign convention of ``offset_frames``:
    ``offset_frames = +k`` means the AUDIO LAGS the video by ``k`` frames: the sound that belongs to frame ``i`` is
    heard at frame ``i + k``. Delaying a clip's audio track by 200 ms at 25 fps gives ``+5``; advancing it gives a
    negative offset. It is found by correlating ``openness[i]`` with ``envelope[i + k]`` over the frames where both
    exist, for every ``k`` in ``[-max_offset, max_offset]``, and taking the ``k`` of the highest Pearson r
    (SyncNet takes the minimum embedding distance; here it is the maximum correlation).
    To fix a clip with offset ``+k``, shift its audio ``k`` frames earlier.

Against a ground-truth aperture (``reference``, e.g. from the phoneme timing of synthesized speech), the same
convention holds with the reference in the audio's place: ``offset_reference = +k`` means the reference lags the
measured openness by ``k`` frames.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from avdiff.video.io import VideoClip

logger = logging.getLogger(__name__)

MIN_VALID_FRAMES = 3  # fewer frames than this give r = 0


def pearson(a: np.ndarray, b: np.ndarray) -> float:
    """Pearson correlation of two equally long signals [F], over the frames where both are finite.

    Returns 0.0 when fewer than 3 frames are valid or either side is constant over them.
    """
    x = np.asarray(a, dtype=np.float64).ravel()
    y = np.asarray(b, dtype=np.float64).ravel()
    if x.shape != y.shape:
        raise ValueError(f"a and b must have the same length, got {x.shape[0]} and {y.shape[0]}")
    valid = np.isfinite(x) & np.isfinite(y)
    if int(valid.sum()) < MIN_VALID_FRAMES:
        return 0.0
    x, y = x[valid], y[valid]
    if np.ptp(x) == 0 or np.ptp(y) == 0:
        return 0.0
    x = x - x.mean()
    y = y - y.mean()
    sxx, syy = float(np.dot(x, x)), float(np.dot(y, y))
    if sxx <= 0.0 or syy <= 0.0:
        return 0.0
    r = float(np.dot(x, y)) / np.sqrt(sxx * syy)
    return float(np.clip(r, -1.0, 1.0))


def lagged_pair(a: np.ndarray, b: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The overlapping parts of ``a[i]`` and ``b[i + k]`` for equally long signals [L]: two arrays [L - |k|]."""
    n = min(len(a), len(b))
    if k >= 0:
        return a[: max(n - k, 0)], b[k:n]
    return a[-k:n], b[: max(n + k, 0)]


def offset_correlations(a: np.ndarray, b: np.ndarray, max_offset: int) -> dict[int, float]:
    """Pearson r of ``a[i]`` against ``b[i + k]`` for each ``k`` in ``[-max_offset, max_offset]``.

    Both are truncated to their common length first.
    """
    n = min(len(a), len(b))
    a, b = a[:n], b[:n]
    return {k: pearson(*lagged_pair(a, b, k)) for k in range(-max_offset, max_offset + 1)}


def best_offset(correlations: dict[int, float]) -> int:
    """The offset with the highest r; ties go to the smallest ``|k|`` (then the negative one)."""
    return max(correlations, key=lambda k: (correlations[k], -abs(k), -k))


@dataclass
class LipSyncResult:
    """Lip-sync scores of one clip. Offsets in frames, with the sign convention of this module's docstring.

    Attributes:
        r_envelope: Pearson r of mouth openness vs speech envelope at offset 0, in [-1, 1].
        offset_frames: the offset in ``[-max_offset, max_offset]`` with the highest r; ``+k``: the audio lags the
            video by ``k`` frames.
        r_at_offset: r at ``offset_frames``.
        r_reference: r of mouth openness vs a ground-truth aperture at offset 0, or None without one.
        offset_reference: best offset of the reference against the openness, or None without one.
        correlations: r per offset, ``{k: r}`` for ``k`` in ``[-max_offset, max_offset]``.
        num_frames: frames compared (the common length of openness and envelope).
        valid_frames: frames among those where both openness and envelope are finite (a face was found).
        interior: the same scores of the mouth interior (:func:`avdiff.metrics.mouth.mouth_interior`) in place of
            the openness, from :func:`score_video`; None otherwise.
    """

    r_envelope: float
    offset_frames: int
    r_at_offset: float
    r_reference: float | None = None
    offset_reference: int | None = None
    correlations: dict[int, float] = field(default_factory=dict)
    num_frames: int = 0
    valid_frames: int = 0
    interior: LipSyncResult | None = None

    def to_dict(self) -> dict:
        """JSON-ready: floats rounded to 6 places, ``correlations`` as ``{"-15": r, ..., "15": r}``."""
        return {
            "r_envelope": round(self.r_envelope, 6),
            "offset_frames": int(self.offset_frames),
            "r_at_offset": round(self.r_at_offset, 6),
            "r_reference": None if self.r_reference is None else round(self.r_reference, 6),
            "offset_reference": None if self.offset_reference is None else int(self.offset_reference),
            "correlations": {str(k): round(float(r), 6) for k, r in self.correlations.items()},
            "num_frames": int(self.num_frames),
            "valid_frames": int(self.valid_frames),
            **({"interior": self.interior.to_dict()} if self.interior is not None else {}),
        }


def _as_signal(name: str, x: np.ndarray) -> np.ndarray:
    arr = np.asarray(x, dtype=np.float64)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be a 1-D per-frame signal [F], got shape {arr.shape}")
    if arr.size == 0:
        raise ValueError(f"{name} is empty (0 frames)")
    return arr


def _common_length(names: tuple[str, str], a: np.ndarray, b: np.ndarray) -> int:
    n = min(len(a), len(b))
    if abs(len(a) - len(b)) > 2:
        logger.warning("%s has %d frames and %s %d; comparing the first %d", names[0], len(a), names[1], len(b), n)
    return n


def lipsync_scores(
    openness: np.ndarray,
    envelope: np.ndarray,
    reference: np.ndarray | None = None,
    max_offset: int = 15,
) -> LipSyncResult:
    """Correlate mouth openness with the speech envelope (and optionally a ground-truth aperture).

    Args:
        openness: mouth openness per video frame [F], NaN where no face was found.
        envelope: speech envelope per video frame [F'] (``F'`` may differ from ``F`` by a few frames; both are
            truncated to the common length).
        reference: ground-truth mouth aperture per frame [F''], or None.
        max_offset: largest offset searched, in frames, >= 0.

    Returns:
        A :class:`LipSyncResult`. ``offset_frames = +k`` means the audio lags the video by ``k`` frames (the sound
        of frame ``i`` is heard at frame ``i + k``): ``openness[i]`` is correlated with ``envelope[i + k]``.
    """
    if isinstance(max_offset, bool) or int(max_offset) != max_offset or max_offset < 0:
        raise ValueError(f"max_offset must be an integer number of frames >= 0, got {max_offset!r}")
    max_offset = int(max_offset)
    a = _as_signal("openness", openness)
    e = _as_signal("envelope", envelope)
    n = _common_length(("openness", "envelope"), a, e)
    a_n, e_n = a[:n], e[:n]
    if max_offset >= n - MIN_VALID_FRAMES:
        logger.info("max_offset=%d leaves under %d overlapping frames at the ends of %d", max_offset, MIN_VALID_FRAMES, n)

    correlations = offset_correlations(a_n, e_n, max_offset)
    offset = best_offset(correlations)
    valid = int((np.isfinite(a_n) & np.isfinite(e_n)).sum())
    if valid < MIN_VALID_FRAMES:
        logger.warning("only %d of %d frames have both a face and audio; lip sync cannot be scored", valid, n)

    r_ref = off_ref = None
    if reference is not None:
        ref = _as_signal("reference", reference)
        m = _common_length(("openness", "reference"), a, ref)
        ref_corr = offset_correlations(a[:m], ref[:m], max_offset)
        r_ref, off_ref = ref_corr[0], best_offset(ref_corr)

    return LipSyncResult(
        r_envelope=correlations[0],
        offset_frames=offset,
        r_at_offset=correlations[offset],
        r_reference=r_ref,
        offset_reference=off_ref,
        correlations=correlations,
        num_frames=n,
        valid_frames=valid,
    )


def score_video(clip: VideoClip, reference: np.ndarray | None = None, max_offset: int = 15) -> LipSyncResult:
    """Lip-sync scores of a decoded video with its audio track: mediapipe mouth openness of every frame against the
    speech envelope of the track (and against ``reference``, a ground-truth aperture [F], when given), and in
    ``.interior`` the same scores of the mouth interior. This is what ``avdiff eval lipsync VIDEO`` reports.

    Raises:
        ValueError: the clip has no audio.
    """
    from avdiff.audio.envelope import speech_envelope
    from avdiff.metrics.mouth import mouth_signals

    if clip.audio is None:
        raise ValueError("the video has no audio track; lip sync needs the speech")
    if reference is not None and abs(len(reference) - clip.num_frames) > 2:
        logger.warning("the reference aperture has %d frames, the video %d", len(reference), clip.num_frames)
    envelope = speech_envelope(clip.audio, clip.fps)
    openness, interior = mouth_signals(clip.frames.numpy())
    result = lipsync_scores(openness, envelope, reference=reference, max_offset=max_offset)
    result.interior = lipsync_scores(interior, envelope, reference=reference, max_offset=max_offset)
    return result
