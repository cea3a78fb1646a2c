"""Scores shown beside a generated video, worded as the CLI words them."""

from __future__ import annotations

from fractions import Fraction

from avdiff.metrics.lipsync import MIN_SCORED_FRAMES, LipSyncResult, describe_offset


def lipsync_reason(result: LipSyncResult) -> str | None:
    """Why ``result`` holds no score (too few frames with a face), or None when it is a score."""
    if result.scored:
        return None
    return result.reason or (
        f"only {result.valid_frames} of {result.num_frames} frames show a face with the speech; "
        f"lip sync needs at least {MIN_SCORED_FRAMES}"
    )


def format_lipsync(result: LipSyncResult, fps: Fraction | float, made_by: str) -> str:
    """Markdown: r at offset 0 against the speech envelope, the best offset and what it means, and the
    mouth-interior r, as ``avdiff eval lipsync`` reports them for the same file; "no score: ..." where the video
    has too few frames with a face."""
    lines = ["**Lip sync**, scored as `avdiff eval lipsync` scores this file:", "", "| measure | value |", "|---|---|"]
    reason = lipsync_reason(result)
    if reason is not None:
        lines.append(f"| r at offset 0: mouth openness vs speech envelope | no score: {reason} |")
    else:
        lines += [
            f"| r at offset 0: mouth openness vs speech envelope | {result.r_envelope:+.3f} |",
            f"| best offset | {describe_offset(result.offset_frames, float(fps))}; r {result.r_at_offset:+.3f} |",
        ]
    inner = result.interior
    if inner is not None:
        inner_reason = lipsync_reason(inner)
        value = f"no score: {inner_reason}" if inner_reason else f"{inner.r_envelope:+.3f}"
        lines.append(f"| mouth-interior r at offset 0 (reads blurred mouths) | {value} |")
    lines.append(f"| frames with a face | {result.valid_frames} of {result.num_frames} |")
    lines += ["", f"Made by {made_by}. An offset of +k means the audio lags the video by k frames."]
    return "\n".join(lines)
