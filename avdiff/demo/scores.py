"""Scores shown beside a generated video, worded as the CLI words them."""

from __future__ import annotations

from fractions import Fraction
from typing import TYPE_CHECKING

from avdiff.metrics.lipsync import MIN_SCORED_FRAMES, LipSyncResult, describe_offset

if TYPE_CHECKING:  # the type only: the page's text needs no torch
    from avdiff.metrics.syncnet_scores import SyncScores


def lipsync_reason(result: LipSyncResult) -> str | None:
    """Why ``result`` holds no score (too few frames with a face), or None when it is a score."""
    if result.scored:
        return None
    return result.reason or (
        f"only {result.valid_frames} of {result.num_frames} frames show a face with the speech; "
        f"lip sync needs at least {MIN_SCORED_FRAMES}"
    )


def format_lipsync(
    result: LipSyncResult,
    fps: Fraction | float,
    made_by: str,
    *,
    syncnet: str | None = None,
    sync: SyncScores | None = None,
    sync_fps: float | None = None,
    sync_reason: str | None = None,
) -> str:
    """Markdown: r at offset 0 against the speech envelope, the best offset and what it means, and the
    mouth-interior r, as ``avdiff eval lipsync`` reports them for the same file; "no score: ..." where the video
    has too few frames with a face. With ``syncnet`` (its name), also the SyncNet's offset (frames at ``sync_fps``,
    its own rate; needed with ``sync``), LSE-C and LSE-D as ``avdiff eval lipsync --syncnet NAME`` reports them, or
    ``sync_reason`` when it could not score the video.

    Raises:
        ValueError: ``sync`` without ``sync_fps``."""
    command = f"avdiff eval lipsync --syncnet {syncnet}" if syncnet else "avdiff eval lipsync"
    lines = [f"**Lip sync**, scored as `{command}` scores this file:", "", "| measure | value |", "|---|---|"]
    reason = lipsync_reason(result)
    if reason is not None:
        lines.append(f"| r at offset 0: mouth openness vs speech envelope | no score: {reason} |")
    else:
        lines += [
            f"| r at offset 0: mouth openness vs speech envelope | {result.r_envelope:+.3f} |",
            f"| best offset | {describe_offset(result.offset_frames, float(fps))}"
            + ("" if result.r_at_offset is None else f"; r {result.r_at_offset:+.3f}")
            + " |",
        ]
    inner = result.interior
    if inner is not None:
        inner_reason = lipsync_reason(inner)
        value = f"no score: {inner_reason}" if inner_reason else f"{inner.r_envelope:+.3f}"
        lines.append(f"| mouth-interior r at offset 0 (reads blurred mouths) | {value} |")
    if syncnet and sync is not None:
        if sync_fps is None:
            raise ValueError("sync_fps (the SyncNet's frame rate) is needed to word its offset")
        lines += [
            f"| SyncNet offset ({syncnet}) | {describe_offset(sync.offset_frames, sync_fps)} |",
            f"| SyncNet LSE-C (higher: more confident sync) / LSE-D | {sync.lse_c:.3f} / {sync.lse_d:.3f} |",
        ]
    elif syncnet and sync_reason:
        lines.append(f"| SyncNet offset ({syncnet}) | no score: {sync_reason} |")
    lines.append(f"| frames with a face | {result.valid_frames} of {result.num_frames} |")
    lines += ["", f"Made by {made_by}. An offset of +k means the audio lags the video by k frames."]
    if syncnet:
        lines[-1] += (
            " The best offset times the mouth's opening against the speech's loudness; the SyncNet, a sync expert "
            "trained on this package's synthetic faces, times the mouth's shapes against the sound (a mouth that "
            "follows the phonemes closes before a p while the speech is loud, which loudness cannot time). It learnt "
            "mouths with the renderer's dark inside and with teeth drawn in them, painted or not."
        )
    return "\n".join(lines)
