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

No score from nothing. A correlation needs frames where both signals exist (a face was found and there is audio).
With fewer than :data:`MIN_SCORED_FRAMES` of them the result carries ``None`` for every r and offset and a
``reason``; an offset whose overlap has fewer is not a candidate for the best offset (its r is NaN). 25 frames is one
second at 25 fps: about four syllables, the fewest open-close cycles of the mouth that a correlation can follow.
Below it, chance alone gives |r| above 1.96 / sqrt(25) = 0.39 one time in twenty at each offset, and the best of 31
offsets is then as high as a real clip's score. Silence is not scored either: a speech envelope that is flat over the
frames with a face (digital silence) has no loudness for the mouth to follow, and :func:`score_video` treats audio
below :data:`avdiff.audio.silence.SILENCE_DBFS` as silent (its envelope, normalised to its loudest frame, would
otherwise turn a quiet room's noise into a signal). An r of 0 is never reported for them. A mouth that does not move
(its openness the same in every frame with a face, a still photo) is scored, r 0 at every offset, but has no best
offset: ``offset_frames`` is None, never 0 as if it were in sync.

Several faces. :func:`score_video` tracks every face (up to :data:`MAX_FACES`), scores each one's mouth against the
audio, and reports the face that speaks: the one whose mouth follows the audio best (the higher of its openness r
and its mouth-interior r at their best offsets), with its box and every other face's scores. A face can also be
named (its index from the left, or a box); a face is never picked by its size.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from avdiff.audio.envelope import speech_envelope
from avdiff.audio.silence import SILENCE_DBFS, describe_level, peak_level_dbfs
from avdiff.metrics.mouth import aperture_from_landmarks, mouth_interior
from avdiff.video.face import box_iou, track_faces

if TYPE_CHECKING:
    from avdiff.video.reader import VideoClip

logger = logging.getLogger(__name__)

MIN_SCORED_FRAMES = 25  # frames with both a face and audio below which there is no score (module docstring)
MAX_FACES = 4  # faces tracked and scored by score_video
NO_OFFSET = "none: the mouth does not move, so it has no timing"  # describe_offset(None)
FLAT_REASON = "the speech envelope is flat over the frames with a face (silent audio): the mouth has nothing to follow"


def pearson(a: np.ndarray, b: np.ndarray, min_frames: int = 3) -> float:
    """Pearson correlation of two equally long signals [F], over the frames where both are finite.

    Returns NaN when fewer than ``min_frames`` frames are valid (no correlation exists), and 0.0 when either side is
    constant over them (a mouth that does not move does not follow the sound).
    """
    x = np.asarray(a, dtype=np.float64).ravel()
    y = np.asarray(b, dtype=np.float64).ravel()
    if x.shape != y.shape:
        raise ValueError(f"a and b must have the same length, got {x.shape[0]} and {y.shape[0]}")
    valid = np.isfinite(x) & np.isfinite(y)
    if int(valid.sum()) < max(min_frames, 2):
        return float("nan")
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


def offset_correlations(
    a: np.ndarray, b: np.ndarray, max_offset: int, min_frames: int = MIN_SCORED_FRAMES
) -> dict[int, float]:
    """Pearson r of ``a[i]`` against ``b[i + k]`` for each ``k`` in ``[-max_offset, max_offset]``; NaN for an offset
    whose overlap has fewer than ``min_frames`` valid frames. Both are truncated to their common length first."""
    n = min(len(a), len(b))
    a, b = a[:n], b[:n]
    return {k: pearson(*lagged_pair(a, b, k), min_frames=min_frames) for k in range(-max_offset, max_offset + 1)}


def best_offset(correlations: dict[int, float]) -> int | None:
    """The offset with the highest r (NaN offsets left out); ties go to the smallest ``|k|`` (then the negative one).
    None when no offset has an r."""
    finite = {k: r for k, r in correlations.items() if math.isfinite(r)}
    if not finite:
        return None
    return max(finite, key=lambda k: (finite[k], -abs(k), -k))


def describe_offset(k: int | None, fps: float) -> str:
    """``+3 frames (+120 ms): the audio lags the video by 3 frames`` and the like (the sign convention above); for
    None, the offset of a mouth that does not move, :data:`NO_OFFSET`."""
    if k is None:
        return NO_OFFSET
    ms = 1000.0 * k / fps
    if k == 0:
        return "0 frames (0 ms): audio and video are in sync"
    side = "lags" if k > 0 else "leads"
    return f"{k:+d} frames ({ms:+.0f} ms): the audio {side} the video by {abs(k)} frame{'s' if abs(k) != 1 else ''}"


def _round(x: float | None) -> float | None:
    return None if x is None or not math.isfinite(x) else round(float(x), 6)


@dataclass
class LipSyncResult:
    """Lip-sync scores of one clip. Offsets in frames, with the sign convention of this module's docstring.

    Every r and offset is None when the clip cannot be scored (``reason`` says why; see :data:`MIN_SCORED_FRAMES`).

    Attributes:
        r_envelope: Pearson r of mouth openness vs speech envelope at offset 0, in [-1, 1].
        offset_frames: the offset in ``[-max_offset, max_offset]`` with the highest r; ``+k``: the audio lags the
            video by ``k`` frames. None also when the mouth does not move (r 0 at every offset: none is best).
        r_at_offset: r at ``offset_frames`` (None with it).
        r_reference: r of mouth openness vs a ground-truth aperture at offset 0, or None without one.
        offset_reference: best offset of the reference against the openness, or None without one (or when the
            mouth does not move).
        correlations: r per offset, ``{k: r}`` for ``k`` in ``[-max_offset, max_offset]`` (NaN: too little overlap).
        num_frames: frames compared (the common length of openness and envelope).
        valid_frames: frames among those where both openness and envelope are finite (a face was found).
        interior: the same scores of the mouth interior (:func:`avdiff.metrics.mouth.mouth_interior`) in place of
            the openness, from :func:`score_video`; None otherwise.
        reason: why there is no score (None when there is one).
        face_index, face_box: from :func:`score_video`: the scored face, counted from the left, and its median
            landmark box ``(x0, y0, x1, y1)`` px.
        face_choice: how it was chosen: ``"only"`` (one face), ``"speaks"`` (its mouth follows the audio best),
            ``"index"`` or ``"box"`` (named by the caller).
        faces: every tracked face: ``{"index", "box", "found_frames", "r_envelope", "offset_frames", "r_at_offset",
            "r_interior_at_offset", "follows"}``, ``follows`` being the score the speaker is chosen by.
    """

    r_envelope: float | None
    offset_frames: int | None
    r_at_offset: float | None
    r_reference: float | None = None
    offset_reference: int | None = None
    correlations: dict[int, float] = field(default_factory=dict)
    num_frames: int = 0
    valid_frames: int = 0
    interior: LipSyncResult | None = None
    reason: str | None = None
    face_index: int | None = None
    face_box: tuple[float, float, float, float] | None = None
    face_choice: str | None = None
    faces: list[dict] = field(default_factory=list)

    @property
    def scored(self) -> bool:
        """Whether the clip has a score (enough frames with a face and audio)."""
        return self.r_envelope is not None

    @property
    def follows(self) -> float | None:
        """How well this mouth follows the audio: the higher of the openness and interior r at their best offsets
        (a signal that does not move counts with its r of 0); None when neither is scored."""
        values = [r for r in (_best_r(self), _best_r(self.interior)) if r is not None]
        return max(values) if values else None

    def to_dict(self) -> dict:
        """Strict JSON-ready (no NaN): floats rounded to 6 places, None as null, ``correlations`` as
        ``{"-15": r, ..., "15": r}``."""
        out = {
            "scored": self.scored,
            "r_envelope": _round(self.r_envelope),
            "offset_frames": None if self.offset_frames is None else int(self.offset_frames),
            "r_at_offset": _round(self.r_at_offset),
            "r_reference": _round(self.r_reference),
            "offset_reference": None if self.offset_reference is None else int(self.offset_reference),
            "correlations": {str(k): _round(r) for k, r in self.correlations.items()},
            "num_frames": int(self.num_frames),
            "valid_frames": int(self.valid_frames),
            "reason": self.reason,
        }
        if self.interior is not None:
            out["interior"] = self.interior.to_dict()
        if self.face_choice is not None:
            out.update(
                face_index=self.face_index,
                face_box=_box(self.face_box),
                face_choice=self.face_choice,
                faces=self.faces,
            )
        return out


def _best_r(result: LipSyncResult | None) -> float | None:
    """r at the best offset; for a scored signal that does not move (no best offset), its r of 0."""
    if result is None:
        return None
    return result.r_envelope if result.r_at_offset is None else result.r_at_offset


def _box(box) -> list[float] | None:
    return None if box is None else [round(float(v), 1) for v in box]


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
    min_frames: int = MIN_SCORED_FRAMES,
) -> LipSyncResult:
    """Correlate mouth openness with the speech envelope (and optionally a ground-truth aperture).

    Args:
        openness: mouth openness per video frame [F], NaN where no face was found.
        envelope: speech envelope per video frame [F'] (``F'`` may differ from ``F`` by a few frames; both are
            truncated to the common length).
        reference: ground-truth mouth aperture per frame [F''], or None.
        max_offset: largest offset searched, in frames, >= 0.
        min_frames: the fewest valid frames that give a score (:data:`MIN_SCORED_FRAMES`), also the fewest an offset
            needs in its overlap.

    Returns:
        A :class:`LipSyncResult`. ``offset_frames = +k`` means the audio lags the video by ``k`` frames (the sound
        of frame ``i`` is heard at frame ``i + k``): ``openness[i]`` is correlated with ``envelope[i + k]``. With fewer
        than ``min_frames`` valid frames, or an envelope that is flat over them (silence), every r and offset is None
        and ``reason`` says why. An openness that is flat over them (a mouth that does not move) has r 0 at every
        offset and no best offset (``offset_frames``, ``r_at_offset`` and ``offset_reference`` None).
    """
    if isinstance(max_offset, bool) or int(max_offset) != max_offset or max_offset < 0:
        raise ValueError(f"max_offset must be an integer number of frames >= 0, got {max_offset!r}")
    if int(min_frames) != min_frames or min_frames < 3:
        raise ValueError(f"min_frames must be an integer >= 3, got {min_frames!r}")
    max_offset = int(max_offset)
    a = _as_signal("openness", openness)
    e = _as_signal("envelope", envelope)
    n = _common_length(("openness", "envelope"), a, e)
    a_n, e_n = a[:n], e[:n]
    both = np.isfinite(a_n) & np.isfinite(e_n)
    valid = int(both.sum())
    if valid < min_frames:
        found = int(np.isfinite(a_n).sum())
        reason = (
            f"only {valid} of {n} frames have both a face and audio (a face in {found}); at least {min_frames} "
            "are needed for a score"
        )
        logger.info("lip sync cannot be scored: %s", reason)  # the result says it (score_video warns once)
        return LipSyncResult(None, None, None, num_frames=n, valid_frames=valid, reason=reason)
    if np.ptp(e_n[both]) == 0:
        logger.info("lip sync cannot be scored: %s", FLAT_REASON)
        return LipSyncResult(None, None, None, num_frames=n, valid_frames=valid, reason=FLAT_REASON)
    moves = bool(np.ptp(a_n[both]) > 0)  # a still mouth correlates 0 at every offset: no offset is its best

    correlations = offset_correlations(a_n, e_n, max_offset, min_frames)
    offset = best_offset(correlations) if moves else None  # offset 0 has every valid frame, so there is one
    r_ref = off_ref = None
    if reference is not None:
        ref = _as_signal("reference", reference)
        m = _common_length(("openness", "reference"), a, ref)
        ref_corr = offset_correlations(a[:m], ref[:m], max_offset, min_frames)
        off_ref = best_offset(ref_corr) if moves else None
        r_ref = ref_corr[0] if math.isfinite(ref_corr[0]) else None

    return LipSyncResult(
        r_envelope=correlations[0],
        offset_frames=offset,
        r_at_offset=None if offset is None else correlations[offset],
        r_reference=r_ref,
        offset_reference=off_ref,
        correlations=correlations,
        num_frames=n,
        valid_frames=valid,
    )


def _face_summary(index: int, box, found: int, result: LipSyncResult) -> dict:
    return {
        "index": index,
        "box": _box(box),
        "found_frames": found,
        "r_envelope": _round(result.r_envelope),
        "offset_frames": result.offset_frames,
        "r_at_offset": _round(result.r_at_offset),
        "r_interior_at_offset": _round(result.interior.r_at_offset if result.interior else None),
        "follows": _round(result.follows),
    }


def choose_face(results: list[LipSyncResult], boxes: list, face: int | tuple | None) -> tuple[int | None, str]:
    """(index, how) of the face to report among per-face results (see :func:`score_video`'s ``face``).

    Raises:
        ValueError: ``face`` names an index out of range, or a box that overlaps no tracked face.
    """

    if face is not None and not results:
        raise ValueError(f"face {face!r}: no face was found in the video")
    if isinstance(face, (int, np.integer)) and not isinstance(face, bool):
        if not 0 <= face < len(results):
            raise ValueError(
                f"face {face}: the video has {len(results)} face(s), indexed 0..{len(results) - 1} from the left"
            )
        return int(face), "index"
    if face is not None:
        if len(face) != 4 or not face[2] > face[0] or not face[3] > face[1]:
            raise ValueError(f"face box {tuple(face)!r}: expected (x0, y0, x1, y1) px with x1 > x0 and y1 > y0")
        overlaps = [box_iou(tuple(face), b) if np.isfinite(b).all() else 0.0 for b in boxes]
        best = int(np.argmax(overlaps))
        if overlaps[best] <= 0:
            raise ValueError(f"face box {tuple(face)!r} overlaps none of the faces found: {[_box(b) for b in boxes]}")
        return best, "box"
    if not results:
        return None, "none"
    if len(results) == 1:
        return 0, "only"
    scored = [k for k, r in enumerate(results) if r.follows is not None]
    if not scored:  # report the face seen most, with its reason
        return int(np.argmax([r.valid_frames for r in results])), "speaks"
    return max(scored, key=lambda k: results[k].follows), "speaks"


def score_video(
    clip: VideoClip,
    reference: np.ndarray | None = None,
    max_offset: int = 15,
    *,
    face: int | tuple[float, float, float, float] | None = None,
    max_faces: int = MAX_FACES,
) -> LipSyncResult:
    """Lip-sync scores of a decoded video with its audio track. This is what ``avdiff eval lipsync VIDEO`` reports.

    Every face (up to ``max_faces``, :func:`avdiff.video.face.track_faces`) is scored: the mediapipe mouth
    openness of each frame against the speech envelope of the track (and against ``reference``, a ground-truth
    aperture [F], when given), and in ``.interior`` the same scores of the mouth interior. The face reported is the
    one that speaks, whose mouth follows the audio best (``LipSyncResult.follows``), unless ``face`` names one: an
    index counted from the left (0 = leftmost, as ``faces`` lists them) or a box ``(x0, y0, x1, y1)`` px (the face
    that overlaps it most). ``faces`` holds every face's scores and box.

    Returns:
        The chosen face's :class:`LipSyncResult`; with no face, too few frames with a face, or silent audio (below
        :data:`~avdiff.audio.silence.SILENCE_DBFS`), an unscored one (``scored`` False, ``reason`` set).

    Raises:
        ValueError: the clip has no audio; ``face`` names no face.
    """

    if clip.audio is None:
        raise ValueError("the video has no audio track; lip sync needs the speech")
    if reference is not None and abs(len(reference) - clip.num_frames) > 2:
        logger.warning("the reference aperture has %d frames, the video %d", len(reference), clip.num_frames)
    level = peak_level_dbfs(clip.audio)
    silent = level < SILENCE_DBFS  # a flat envelope: not scored (a quiet room's noise is not speech)
    envelope = speech_envelope(clip.audio, clip.fps)
    if silent:
        envelope = np.zeros_like(envelope)
    frames = clip.frames.numpy()
    tracks = track_faces(frames, max_faces)
    found = tracks.found().sum(axis=1) if tracks.num_faces else np.zeros(0, int)
    keep = [k for k in range(tracks.num_faces) if found[k] >= min(MIN_SCORED_FRAMES, max(1, clip.num_frames // 2))]
    results, boxes = [], []
    for k in keep:  # faces seen in a few frames only (a false detection, a passer-by) are not candidates
        landmarks = tracks.landmarks[k]
        result = lipsync_scores(
            aperture_from_landmarks(landmarks), envelope, reference=reference, max_offset=max_offset
        )
        result.interior = lipsync_scores(
            mouth_interior(frames, landmarks), envelope, reference=reference, max_offset=max_offset
        )
        results.append(result)
        boxes.append(tracks.boxes[k])
    index, how = choose_face(results, boxes, face)
    if index is None:
        n = min(clip.num_frames, len(envelope))
        reason = f"no face found in any of the {clip.num_frames} frames"
        if tracks.num_faces:
            reason = f"a face in at most {int(found.max())} of the {clip.num_frames} frames"
        logger.warning("lip sync cannot be scored: %s", reason)
        return LipSyncResult(None, None, None, num_frames=n, valid_frames=0, reason=reason, face_choice="none")
    result = results[index]
    if silent:  # name the level where the flat envelope is the reason
        for r in (result, result.interior):
            if r is not None and r.reason == FLAT_REASON:
                r.reason = f"the audio is silent ({describe_level(level)}): there is no speech for the mouth to follow"
    result.face_index, result.face_box, result.face_choice = index, boxes[index], how
    result.faces = [_face_summary(k, boxes[k], int(found[keep[k]]), r) for k, r in enumerate(results)]
    if len(results) > 1:
        others = ", ".join(
            f"face {f['index']} {f['box']} follows {f['follows']}" for f in result.faces if f["index"] != index
        )
        logger.info("%d faces; scoring face %d %s (%s); %s", len(results), index, _box(boxes[index]), how, others)
    if not result.scored:
        logger.warning("lip sync cannot be scored: %s", result.reason)
    return result
