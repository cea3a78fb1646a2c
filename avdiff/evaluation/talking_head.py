"""The talking-head benchmark: animate held-out clips' faces with their own speech, and score every result.

For each clip of a DATA folder (for the proof, ``avdiff synth --split test``: sentences no training clip has):

* the *photo* is the clip's frame with the most closed mouth (the minimum of its ground-truth aperture, or of the
  mouth openness mediapipe measures when the clip has no aperture file), a still face as a user would give it;
* each *source* animates that photo with the clip's speech and is written to ``OUT/SOURCE/ID.mp4``:

  * ``ground_truth``: the clip's own frames, re-encoded (the ceiling: what the metric gives real lip motion);
  * ``still``: the photo held for the whole clip (what no lip motion scores);
  * ``warp``: the model-free mouth-warp baseline (:class:`~avdiff.pipelines.WarpBaselinePipeline`);
  * ``NAME``: a trained :class:`~avdiff.pipelines.TalkingHeadPipeline`;

* every video is read back from its mp4 and scored exactly as ``avdiff eval lipsync OUT/SOURCE/ID.mp4
  --reference-aperture DATA/clips/ID.aperture.npy`` scores it (:func:`avdiff.metrics.lipsync.score_video`): the
  correlation of the mouth openness (mediapipe's inner-lip aperture) and of the mouth interior (the dark share of the
  mouth box, which still reads blurred mouths) with the true aperture and with the speech; it is compared with the
  clip's ground-truth frames by PSNR and SSIM inside the face crop (the photo's alignment, 128 px) and inside the
  mouth region (the ``"lower_face"`` framing of the same alignment, 128 px); and its identity is measured against
  the photo with dlib's face-recognition network (:mod:`avdiff.metrics.identity`: the share of frames judged the
  photo's person, the mean descriptor distance and CSIM);
* with a ``syncnet`` (a SyncNet-style sync expert, :mod:`avdiff.metrics.syncnet_scores`), every video also gets its
  LSE-D, LSE-C and SyncNet offset, as ``avdiff eval lipsync VIDEO --syncnet CKPT`` gives them. The offset of the
  lip-sync score is where the mouth's openness best follows the speech's loudness, which a mouth that moves with
  the phonemes (shut before a p, still on a held vowel) need not do; the SyncNet's is where the mouth best matches
  what is said.

``evaluate_talking_heads`` returns a :class:`TalkingHeadReport`: per-clip scores, the mean per source, and how often
each trained model beats each baseline on the same clip.

Under several processes (``torchrun`` or ``accelerate launch``; ``state`` an :class:`accelerate.PartialState`) the
clips are shared out in contiguous blocks (:func:`~avdiff.loading.process_share`), each process animates and scores its block on its
own device, and the blocks are gathered back in the index's order: every process returns the report one process
would have made, the same scores in the same order. A model's noise is seeded afresh for every clip
(:func:`pipeline_animator`), so a clip's video does not depend on which process made it, nor after which clips.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from accelerate.utils import gather_object
from skimage.metrics import peak_signal_noise_ratio, structural_similarity
from tqdm.auto import tqdm

from avdiff.audio.clock import FpsLike, as_fraction_fps
from avdiff.data.format import check_name
from avdiff.data.video_dataset import ClipData, load_clip, select_records
from avdiff.evaluation.syncnet import syncnet_scores_or_reason
from avdiff.loading import process_share
from avdiff.metrics.identity import FaceRecognizer, identity_scores
from avdiff.metrics.lipsync import score_video
from avdiff.metrics.mouth import mouth_openness
from avdiff.pipelines import VideoPipelineOutput, WarpBaselinePipeline
from avdiff.video.align import alignment_matrix, warp_to_crop
from avdiff.video.face import NoFaceError, detect_face
from avdiff.video.reader import read_video

logger = logging.getLogger(__name__)

FACE_CROP_PX = 128
BASELINES = ("ground_truth", "still", "warp")
SUMMARY_KEYS = (
    "r_reference",
    "r_envelope",
    "r_interior_reference",
    "r_interior_envelope",
    "psnr_db",
    "ssim",
    "mouth_psnr_db",
    "mouth_ssim",
    "identity_share",
    "identity_distance",
    "csim",
    "lse_d",
    "lse_c",
)

# animate(photo uint8 [H, W, 3], clip) -> VideoPipelineOutput with the clip's speech
Animator = Callable[[np.ndarray, ClipData], "object"]


@dataclass
class ClipScore:
    """One source on one clip. ``r_*`` are Pearson r in [-1, 1] at offset 0 of the mouth openness (mediapipe's
    inner-lip aperture) or, ``r_interior_*``, of the mouth interior (:func:`avdiff.metrics.mouth.mouth_interior`),
    against the true aperture (``reference``) or the speech envelope; offsets in frames, +k: the audio lags the video;
    PSNR in dB and SSIM in [-1, 1] over the face crop and, ``mouth_*``, over the mouth region; ``identity_share``,
    ``identity_distance`` and ``csim`` against the photo (:class:`avdiff.metrics.identity.IdentityScores`);
    ``lse_d``, ``lse_c`` and ``sync_offset_frames`` from a SyncNet (:class:`avdiff.metrics.syncnet_scores.SyncScores`,
    same sign convention). The lip-sync fields are None when the video could not be scored (too few frames with a
    face: ``reason`` says why; see :data:`avdiff.metrics.lipsync.MIN_SCORED_FRAMES`); the identity fields likewise;
    the SyncNet fields when no SyncNet was given or it could not score the video (``sync_reason`` says why)."""

    clip: str
    source: str
    video: str
    r_reference: float | None
    r_envelope: float | None
    offset_frames: int | None
    r_interior_reference: float | None
    r_interior_envelope: float | None
    psnr_db: float
    ssim: float
    valid_frames: int
    num_frames: int
    reason: str | None = None
    mouth_psnr_db: float | None = None
    mouth_ssim: float | None = None
    identity_share: float | None = None
    identity_distance: float | None = None
    csim: float | None = None
    lse_d: float | None = None
    lse_c: float | None = None
    sync_offset_frames: int | None = None
    sync_reason: str | None = None

    @property
    def scored(self) -> bool:
        return self.r_envelope is not None


@dataclass
class TalkingHeadReport:
    """Per-clip scores of every source, with the settings that made them."""

    scores: list[ClipScore]
    settings: dict = field(default_factory=dict)
    skipped: list[dict] = field(default_factory=list)  # clips no source could animate: {"clip", "reason"}

    def sources(self) -> list[str]:
        return list(dict.fromkeys(s.source for s in self.scores))

    def summary(self) -> dict[str, dict[str, float | int | None]]:
        """Per source: ``clips`` (videos made), ``scored`` (those with a lip-sync score), the mean of each score over
        the clips that have it (lip-sync scores over scored clips only, the ``*_reference`` ones over clips with a
        true aperture; None when no clip has it), ``offset_within_1``, the share of scored clips whose best offset
        is within one frame of 0 (a mouth that does not move has none: it is not), and ``sync_offset_within_1``,
        the same of the SyncNet's offset over the clips it scored (None without a SyncNet). An unscored clip is left
        out of the means, never counted as a zero."""
        out = {}
        for source in self.sources():
            rows = [s for s in self.scores if s.source == source]
            scored = [s for s in rows if s.scored]
            out[source] = {"clips": len(rows), "scored": len(scored)}
            for key in SUMMARY_KEYS:
                values = [getattr(s, key) for s in rows if getattr(s, key) is not None]
                out[source][key] = float(np.mean(values)) if values else None
            out[source]["offset_within_1"] = (
                float(np.mean([s.offset_frames is not None and abs(s.offset_frames) <= 1 for s in scored]))
                if scored
                else None
            )
            synced = [s for s in rows if s.sync_offset_frames is not None]
            out[source]["sync_scored"] = len(synced)
            out[source]["sync_offset_within_1"] = (
                float(np.mean([abs(s.sync_offset_frames) <= 1 for s in synced])) if synced else None
            )
        return out

    def wins(self, model: str, other: str, key: str = "r_reference") -> tuple[int, int]:
        """(clips where ``model`` scores higher than ``other`` on ``key``, clips compared); every key of
        :data:`SUMMARY_KEYS` but ``lse_d`` and ``identity_distance`` is better higher."""
        a = {s.clip: getattr(s, key) for s in self.scores if s.source == model}
        b = {s.clip: getattr(s, key) for s in self.scores if s.source == other}
        common = [c for c in a if c in b and a[c] is not None and b[c] is not None]
        return sum(a[c] > b[c] for c in common), len(common)

    def to_dict(self) -> dict:
        """Strict-JSON-ready (``json.dumps(..., allow_nan=False)`` works): missing scores are None."""
        return {
            "settings": self.settings,
            "summary": self.summary(),
            "clips": [asdict(s) for s in self.scores],
            "skipped": self.skipped,
        }

    def to_markdown(self, models: list[str] | None = None) -> str:
        """The summary as a Markdown table (with the SyncNet's columns when it scored any video), then each model's
        per-clip wins over the baselines."""
        summary = self.summary()
        sync = any(m["sync_scored"] for m in summary.values())
        lines = [
            "| source | clips scored | openness r vs true aperture | openness r vs speech | loudness offset within 1 "
            "frame | interior r vs true aperture | interior r vs speech | face PSNR (dB) | face SSIM "
            "| mouth PSNR (dB) | mouth SSIM | same person | CSIM |"
            + (" SyncNet offset within 1 frame | LSE-C | LSE-D |" if sync else ""),
            "|---|---|---|---|---|---|---|---|---|---|---|---|---|" + ("---|---|---|" if sync else ""),
        ]
        for source, m in summary.items():
            lines.append(
                f"| {source} | {m['scored']} of {m['clips']} | {_f(m['r_reference'], '+.3f')} "
                f"| {_f(m['r_envelope'], '+.3f')} | {_f(m['offset_within_1'], '.0%')} "
                f"| {_f(m['r_interior_reference'], '+.3f')} | {_f(m['r_interior_envelope'], '+.3f')} "
                f"| {_f(m['psnr_db'], '.2f')} | {_f(m['ssim'], '.3f')} | {_f(m['mouth_psnr_db'], '.2f')} "
                f"| {_f(m['mouth_ssim'], '.3f')} | {_f(m['identity_share'], '.0%')} "
                f"| {_f(m['csim'], '.3f')} |"
                + (
                    f" {_f(m['sync_offset_within_1'], '.0%')} ({m['sync_scored']}) | {_f(m['lse_c'], '.3f')} "
                    f"| {_f(m['lse_d'], '.3f')} |"
                    if sync
                    else ""
                )
            )
        models = models if models is not None else [s for s in self.sources() if s not in BASELINES]
        measures = [
            ("openness r vs true aperture", "r_reference"),
            ("interior r vs true aperture", "r_interior_reference"),
        ]
        if sync:
            measures.append(("SyncNet LSE-C", "lse_c"))
        wins = [
            f"- {model} beats {other} on {won} of {n} clips by {name} (same clip)"
            for model in models
            for other in self.sources()
            if other not in (model, "ground_truth")
            for name, key in measures
            for won, n in [self.wins(model, other, key)]
        ]
        skipped = [f"- {c['clip']}: not animated ({c['reason']})" for c in self.skipped]
        return "\n".join(lines + ([""] + wins if wins else []) + ([""] + skipped if skipped else [])) + "\n"


def _f(value: float | None, spec: str) -> str:
    """A number for the Markdown table; n/a for a missing one."""
    return "n/a" if value is None else format(value, spec)


def evaluation_photo(clip: ClipData, aperture: np.ndarray | None = None) -> tuple[int, np.ndarray]:
    """(index, frame uint8 [H, W, 3]) of the clip's frame with the most closed mouth: the minimum of ``aperture``
    (the ground truth, float [F]), or of the openness mediapipe measures when it is None (first frame on ties)."""
    if aperture is None:
        aperture = mouth_openness(clip.frames)
    values = np.asarray(aperture, dtype=np.float64)[: clip.num_frames]
    if not np.isfinite(values).any():
        raise NoFaceError(f"clip {clip.record.id!r}: no frame shows a face to take as the photo")
    index = int(np.nanargmin(values))
    return index, clip.frames[index]


def reference_aperture(data_dir: str | os.PathLike, clip: ClipData) -> np.ndarray | None:
    """The clip's ground-truth aperture float [F] (``DATA/clips/ID.aperture.npy``), or None when it has none."""
    if not clip.record.aperture:
        return None
    return np.load(Path(data_dir) / clip.record.aperture).astype(np.float64)


def face_similarity(
    frames: np.ndarray, truth: np.ndarray, matrix: np.ndarray, size: int = FACE_CROP_PX
) -> tuple[float, float]:
    """(PSNR dB, SSIM) between two videos uint8 [F, H, W, 3] inside the crop given by ``matrix`` (photo px -> crop
    px at ``size``; a face or a lower-face alignment), averaged over frames (over the common length)."""
    n = min(len(frames), len(truth))
    psnr, ssim = [], []
    for a, b in zip(frames[:n], truth[:n]):
        ca, cb = warp_to_crop(np.asarray(a), matrix, size), warp_to_crop(np.asarray(b), matrix, size)
        psnr.append(peak_signal_noise_ratio(cb, ca, data_range=255))
        ssim.append(structural_similarity(cb, ca, channel_axis=-1, data_range=255))
    return float(np.mean(np.minimum(psnr, 100.0))), float(np.mean(ssim))  # identical frames: inf dB -> 100


def baseline_animator(name: str, fps: FpsLike = 25) -> Animator:
    """The animator of a baseline source (see the module docstring); ``fps`` is the warp baseline's rate (the other
    two keep the clip's)."""
    if name == "ground_truth":  # the clip's own frames and rate
        return lambda photo, clip: VideoPipelineOutput(clip.frames, as_fraction_fps(clip.record.fps), clip.audio)
    if name == "still":
        return lambda photo, clip: VideoPipelineOutput(
            np.broadcast_to(photo, clip.frames.shape), as_fraction_fps(clip.record.fps), clip.audio
        )
    if name == "warp":
        warp = WarpBaselinePipeline(fps=fps)
        warp.set_progress_bar_config(disable=True)
        return lambda photo, clip: warp(photo, clip.audio)
    raise ValueError(f"unknown baseline {name!r}; baselines: {list(BASELINES)}")


def pipeline_animator(pipe, **call_kwargs) -> Animator:
    """An animator calling a TalkingHeadPipeline with ``call_kwargs``; a ``seed`` entry (default 0) seeds a fresh
    CPU generator for every clip (``torch.Generator().manual_seed(seed)``; a ``generator`` entry is dropped), so a
    clip's video depends on the seed and the clip alone: not on the clips animated before it, nor on the process
    that animates it when the clips are shared between processes (:func:`evaluate_talking_heads`)."""
    seed = call_kwargs.pop("seed", 0)
    call_kwargs.pop("generator", None)
    pipe.set_progress_bar_config(disable=True)  # the clips bar of evaluate_talking_heads is the one to watch

    def animate(photo: np.ndarray, clip: ClipData):
        return pipe(photo, clip.audio, generator=torch.Generator().manual_seed(seed), **call_kwargs)

    return animate


def evaluate_talking_heads(
    data_dir: str | os.PathLike,
    out_dir: str | os.PathLike,
    animators: dict[str, Animator],
    split: str | None = None,
    max_clips: int | None = None,
    max_offset: int = 15,
    progress_bar: bool = True,
    state=None,
    syncnet=None,
) -> TalkingHeadReport:
    """Animate every clip's photo with every source, write ``OUT/SOURCE/ID.mp4``, and score it (module docstring).

    Args:
        data_dir: a DATA folder of held-out clips.
        out_dir: where the videos and ``report.json`` / ``report.md`` go.
        animators: source name -> ``animate(photo, clip)`` (:func:`baseline_animator`, :func:`pipeline_animator`).
        split, max_clips: which clips of the index.
        max_offset: the offset search of the lip-sync score, frames.
        progress_bar: show the clips bar (on the main process only, over its own share).
        state: an :class:`accelerate.PartialState` (:func:`avdiff.loading.process_state`) to share the clips between
            the processes of a launcher: each animates and scores its :func:`~avdiff.loading.process_share` (its animators already on
            its own device), and the shares are gathered (``accelerate.utils.gather_object``) so every process
            returns the whole report, in the index's order. Every process must call this with the same arguments.
            None: this process does every clip.
        syncnet: a :class:`~avdiff.models.syncnet.SyncNet` that also scores every video (LSE-D, LSE-C, its
            offset, searched over ``max_offset``), or None.

    Raises:
        ValueError: a source name that is not a safe folder name (:func:`avdiff.data.format.check_name`).
    """
    for source in animators:
        check_name(source, "source name")  # each becomes the folder OUT/SOURCE
    recognizer = FaceRecognizer.default()

    out_dir = Path(out_dir)
    records = select_records(data_dir, split, max_clips)
    processes = 1 if state is None else state.num_processes
    share = process_share(records, state)
    if processes > 1:
        logger.info(
            "process %d of %d: %d of the %d clips (%s)",
            state.process_index,
            processes,
            len(share),
            len(records),
            ", ".join(r.id for r in share) or "none",
        )
    main_process = state is None or state.is_main_process
    scores: list[ClipScore] = []
    skipped: list[dict] = []
    for record in tqdm(share, desc="clips", unit="clip", disable=not (progress_bar and main_process)):
        clip = load_clip(data_dir, record)
        reference = reference_aperture(data_dir, clip)
        try:
            _, photo = evaluation_photo(clip, reference)
            landmarks = detect_face(photo).landmarks
            matrix = alignment_matrix(landmarks, FACE_CROP_PX)  # photo px -> face crop px
            mouth_matrix = alignment_matrix(landmarks, FACE_CROP_PX, "lower_face")  # photo px -> mouth region px
            photo_identity = recognizer.descriptor(photo)
        except NoFaceError as e:  # no photo to animate: reported, not scored, not fatal
            logger.warning("skipping clip %s: %s", record.id, e)
            skipped.append({"clip": record.id, "reason": str(e)})
            continue
        for source, animate in animators.items():
            path = animate(photo, clip).save(out_dir / source / f"{record.id}.mp4")
            video = read_video(path)  # scored as written, as `avdiff eval lipsync` reads it
            result = score_video(video, reference, max_offset)
            frames = video.frames.numpy()
            psnr, ssim = face_similarity(frames, clip.frames, matrix)
            mouth_psnr, mouth_ssim = face_similarity(frames, clip.frames, mouth_matrix)
            identity = identity_scores(frames, photo_identity, recognizer) if photo_identity is not None else None
            sync, sync_reason = (
                syncnet_scores_or_reason(syncnet, video, max_offset) if syncnet is not None else (None, None)
            )
            inner = result.interior
            scores.append(
                ClipScore(
                    clip=record.id,
                    source=source,
                    video=str(path),
                    r_reference=result.r_reference,
                    r_envelope=result.r_envelope,
                    offset_frames=result.offset_frames,
                    r_interior_reference=inner.r_reference if inner else None,
                    r_interior_envelope=inner.r_envelope if inner else None,
                    psnr_db=psnr,
                    ssim=ssim,
                    valid_frames=result.valid_frames,
                    num_frames=result.num_frames,
                    reason=result.reason,
                    mouth_psnr_db=mouth_psnr,
                    mouth_ssim=mouth_ssim,
                    identity_share=identity.same_person_share if identity else None,
                    identity_distance=identity.mean_distance if identity else None,
                    csim=identity.csim if identity else None,
                    lse_d=sync.lse_d if sync else None,
                    lse_c=sync.lse_c if sync else None,
                    sync_offset_frames=sync.offset_frames if sync else None,
                    sync_reason=sync_reason,
                )
            )
            logger.info(
                "%s %s: r_reference %s (interior %s), r_envelope %s, PSNR %.2f dB%s%s",
                record.id,
                source,
                _fmt(result.r_reference),
                _fmt(inner.r_reference if inner else None),
                _fmt(result.r_envelope),
                psnr,
                f" (no lip-sync score: {result.reason})" if result.reason else "",
                f", SyncNet offset {sync.offset_frames:+d} LSE-C {sync.lse_c:.3f}" if sync else "",
            )
    if processes > 1:
        # one (scores, skipped) per process, in process order: the contiguous shares back in the index's order
        gathered = gather_object([(scores, skipped)])
        scores = [score for part, _ in gathered for score in part]
        skipped = [clip for _, part in gathered for clip in part]
    return TalkingHeadReport(scores, skipped=skipped)


def write_report(report: TalkingHeadReport, out_dir: str | os.PathLike) -> tuple[Path, Path]:
    """``OUT/report.json`` (settings, summary, per-clip scores) and ``OUT/report.md`` (the tables)."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    json_path, md_path = out_dir / "report.json", out_dir / "report.md"
    json_path.write_text(json.dumps(strict_json(report.to_dict()), indent=2, allow_nan=False, default=str) + "\n")
    md_path.write_text(report.to_markdown())
    return json_path, md_path


def strict_json(value):
    """``value`` with every non-finite float replaced by None, so the JSON is strict (no bare NaN or Infinity)."""
    if isinstance(value, dict):
        return {k: strict_json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [strict_json(v) for v in value]
    if isinstance(value, float) and not np.isfinite(value):
        return None
    return value


def _fmt(r: float | None) -> str:
    return "n/a" if r is None else f"{r:+.3f}"
