"""Training items for the text-to-video (scene) model: a clip's frames and its caption's text-encoder states.

:class:`SceneClipDataset` reads a SCENES DATA folder (``avdiff synth scenes``; the layout is
:mod:`avdiff.data.scenes`'s): ``index.jsonl`` with one :class:`~avdiff.data.scenes.SceneRecord` per clip,
``clips/ID.mp4`` and ``clips/ID.masks.npy``. Caches under ``DATA/cache/``, each written once,
atomically, and remade when the index changes:

* ``scene_frames_<S>_<F>.npy`` (decoded from the mp4s) or ``scene_rendered_<S>_<F>.npy`` (re-rendered exactly from
  the records, ``frames_from="render"``): every clip's first ``F`` frames at ``S`` px, uint8 [N, F, S, S, 3], read
  back memory-mapped (decoding an mp4 per step would cost more than the UNet);
* ``scene_masks_<S>_<F>.npy``: with ``with_masks``, their label maps (``clips/ID.masks.npy``: 0 sky, 1 ground, then
  the objects), uint8 [N, F, S, S];
* ``scene_text_<key>.pt``: the frozen text encoder's token states of every distinct caption, float32 [K, T, D]
  (``key`` names the encoder and its token length; the encoder never runs during training).

An item is ``frames`` uint8 [F, S, S, 3], ``text`` float32 [T, D], ``index`` (int64, the clip's row) and, with
``with_masks``, ``masks`` uint8 [F, S, S].
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import torch
from torch.utils.data import Dataset
from tqdm.auto import tqdm

from avdiff.data.scenes import SceneRecord, read_scene_index, record_spec, render_scene
from avdiff.data.video_dataset import resize_crops
from avdiff.video.reader import read_video

logger = logging.getLogger(__name__)

CACHE_VERSION = 1


def select_scene_records(
    data_dir: str | os.PathLike, split: str | None = None, limit: int | None = None
) -> list[SceneRecord]:
    """The records of a SCENES DATA folder (:func:`avdiff.data.scenes.read_scene_index`), optionally of one ``split``
    and at most ``limit`` of them, in index order.

    Raises:
        FileNotFoundError: the folder has no ``index.jsonl``, or no record matches.
        ValueError: a line of the index is not a scene record (named with its line number).
    """
    if not (Path(data_dir) / "index.jsonl").is_file():
        raise FileNotFoundError(
            f"{str(data_dir)!r} is not a SCENES DATA folder (no index.jsonl); make one with `avdiff synth scenes`"
        )
    records = [r for r in read_scene_index(data_dir) if split is None or r.split == split]
    records = records[:limit] if limit is not None else records
    if not records:
        raise FileNotFoundError(f"no clip in {str(data_dir)!r}" + (f" with split {split!r}" if split else ""))
    return records


def _index_digest(records: list[SceneRecord], *parts: object) -> str:
    text = json.dumps([[r.id, r.video, r.masks, r.caption] for r in records] + [list(map(str, parts))])
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _atomic_save(path: Path, write: Callable[[Path], None]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.partial")
    write(tmp)
    os.replace(tmp, path)


def load_clip_frames(data_dir: str | os.PathLike, record: SceneRecord, size: int, num_frames: int) -> np.ndarray:
    """The first ``num_frames`` frames of a clip at ``size`` px: uint8 [F, S, S, 3].

    Raises:
        ValueError: the clip has fewer frames, or is not square.
    """

    path = Path(data_dir) / record.video
    frames = read_video(path, max_frames=num_frames, with_audio=False).frames.numpy()  # (F, H, W, 3) uint8
    if len(frames) < num_frames:
        raise ValueError(f"{path}: {len(frames)} frames, fewer than num_frames={num_frames}")
    if frames.shape[1] != frames.shape[2]:
        raise ValueError(f"{path}: frames are {frames.shape[2]}x{frames.shape[1]}, not square")
    return resize_crops(frames[:num_frames], size)


def render_clip_frames(data_dir: str | os.PathLike, record: SceneRecord, size: int, num_frames: int) -> np.ndarray:
    """The first ``num_frames`` frames of a clip re-rendered exactly from its record (seed, objects and the loudness
    envelopes in ``clips/ID.sounds.npz``) at ``size`` px: uint8 [F, S, S, 3]. The mp4 holds the same picture up to
    H.264's loss, which is not byte-reproducible from run to run; the rendering is.

    Raises:
        FileNotFoundError: the record names a sounds file that is missing.
        ValueError: fewer frames than ``num_frames``, or a record the scene world cannot render.
    """

    envelopes = {}
    if record.sounds:
        path = Path(data_dir) / record.sounds
        if not path.is_file():
            raise FileNotFoundError(
                f"{str(path)!r}: the sounds (loudness envelopes) of clip {record.id!r} are missing"
            )
        with np.load(path) as npz:
            envelopes = {k[len("envelope_") :]: npz[k] for k in npz.files if k.startswith("envelope_")}
    try:
        frames = render_scene(
            record_spec(record), envelopes=envelopes, num_frames=record.num_frames, size=record.size
        ).frames
    except (KeyError, ValueError) as e:
        raise ValueError(f"clip {record.id!r} cannot be re-rendered ({e}); use frames_from='video'") from e
    if len(frames) < num_frames:
        raise ValueError(f"clip {record.id!r}: {len(frames)} frames, fewer than num_frames={num_frames}")
    return resize_crops(np.ascontiguousarray(frames[:num_frames]), size)


def load_clip_masks(data_dir: str | os.PathLike, record: SceneRecord, size: int, num_frames: int) -> np.ndarray:
    """The first ``num_frames`` label maps of a clip at ``size`` px (nearest): uint8 [F, S, S].

    Raises:
        FileNotFoundError: the masks file is missing.
        ValueError: fewer maps than ``num_frames``.
    """

    path = Path(data_dir) / record.masks
    if not path.is_file():
        raise FileNotFoundError(f"{str(path)!r}: the masks of clip {record.id!r} are missing")
    masks = np.load(path)
    if masks.ndim != 3 or len(masks) < num_frames:
        raise ValueError(f"{path}: expected label maps [F >= {num_frames}, H, W], got shape {masks.shape}")
    masks = masks[:num_frames].astype(np.uint8)
    if masks.shape[1:] != (size, size):
        masks = np.stack([cv2.resize(m, (size, size), interpolation=cv2.INTER_NEAREST) for m in masks])
    return masks


CLIP_ARRAYS = {  # kind -> (loader, channels after [F, S, S])
    "frames": (load_clip_frames, (3,)),  # decoded from the mp4
    "rendered": (render_clip_frames, (3,)),  # re-rendered exactly from the record
    "masks": (load_clip_masks, ()),
}


def cached_clip_arrays(
    data_dir: str | os.PathLike,
    records: list[SceneRecord],
    kind: str,
    size: int,
    num_frames: int,
    progress_bar: bool = False,
) -> np.ndarray:
    """Every clip's ``kind`` (``"frames"`` decoded or ``"rendered"``: uint8 [N, F, S, S, 3]; ``"masks"``: uint8
    [N, F, S, S]), memory-mapped from the cache ``DATA/cache/scene_<kind>_<S>_<F>.npy`` (made when missing or
    stale)."""
    if kind not in CLIP_ARRAYS:
        raise ValueError(f"kind must be one of {sorted(CLIP_ARRAYS)}, got {kind!r}")
    load, channels = CLIP_ARRAYS[kind]
    item_shape = (num_frames, size, size, *channels)
    shape = (len(records), *item_shape)
    path = Path(data_dir) / "cache" / f"scene_{kind}_{size}_{num_frames}.npy"
    meta_path = path.with_suffix(".json")
    digest = _index_digest(records, kind, size, num_frames, CACHE_VERSION)
    if path.is_file() and meta_path.is_file():
        try:
            if json.loads(meta_path.read_text()).get("digest") == digest:
                cached = np.load(path, mmap_mode="r")
                if cached.shape == shape:
                    return cached
        except (ValueError, OSError) as e:  # a damaged cache is remade
            logger.warning("cache %s is unreadable (%s); remaking it", path, e)
    logger.info("reading the %s of %d clips into %s", kind, len(records), path)

    def write(tmp: Path) -> None:
        out = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.uint8, shape=shape)
        for i, record in enumerate(tqdm(records, desc=f"caching {kind}", unit="clip", disable=not progress_bar)):
            out[i] = load(data_dir, record, size, num_frames)
        out.flush()
        del out

    _atomic_save(path, write)
    _atomic_save(meta_path, lambda tmp: tmp.write_text(json.dumps({"digest": digest, "clips": len(records)})))
    return np.load(path, mmap_mode="r")


def cached_text_states(
    data_dir: str | os.PathLike,
    captions: list[str],
    key: str,
    encode: Callable[[list[str]], torch.Tensor],
    batch_size: int = 64,
    progress_bar: bool = False,
) -> tuple[torch.Tensor, dict[str, int]]:
    """The token states of the distinct ``captions`` (float32 [K, T, D]) and each caption's row, from the cache
    ``DATA/cache/scene_text_<key>.pt`` (made with ``encode`` when missing or when it lacks a caption)."""
    distinct = sorted(set(captions))
    path = Path(data_dir) / "cache" / f"scene_text_{key}.pt"
    if path.is_file():
        try:
            cached = torch.load(path, map_location="cpu", weights_only=True)
            rows = {c: i for i, c in enumerate(cached["captions"])}
            if cached.get("version") == CACHE_VERSION and all(c in rows for c in distinct):
                return cached["states"], rows
        except Exception as e:  # a damaged cache is remade
            logger.warning("text cache %s is unreadable (%s); remaking it", path, e)
    logger.info("encoding %d distinct captions into %s", len(distinct), path)
    chunks = [
        encode(distinct[i : i + batch_size]).float().cpu()
        for i in tqdm(range(0, len(distinct), batch_size), desc="encoding captions", disable=not progress_bar)
    ]
    states = torch.cat(chunks)  # (K, T, D)
    _atomic_save(path, lambda tmp: torch.save({"version": CACHE_VERSION, "captions": distinct, "states": states}, tmp))
    return states, {c: i for i, c in enumerate(distinct)}


class SceneClipDataset(Dataset):
    """Scene clips with their captions' token states (see the module docstring).

    Args:
        data_dir: the SCENES DATA folder.
        encode_text: captions -> token states [B, T, D] (the frozen text encoder, e.g. ``pipe.encode_prompt``).
        text_key: names ``encode_text`` in the cache file (e.g. ``"minilm_32"``); a different encoder needs another.
        size: frame side, px.
        num_frames: frames per clip (the first ``num_frames`` of each).
        split, max_clips: which records of the index.
        with_masks: also give each clip's label maps (``masks`` in the items).
        frames_from: ``"video"`` decodes ``clips/ID.mp4``; ``"render"`` re-renders each clip exactly from its record
            with :mod:`avdiff.data.scenes` (no H.264 loss, and the same pixels on every machine).
        progress_bar: show the one-time decoding and encoding.
    """

    def __init__(
        self,
        data_dir: str | os.PathLike,
        encode_text: Callable[[list[str]], torch.Tensor],
        text_key: str,
        size: int = 64,
        num_frames: int = 16,
        split: str | None = None,
        max_clips: int | None = None,
        with_masks: bool = False,
        frames_from: str = "video",
        progress_bar: bool = False,
    ):
        if num_frames < 1 or size < 1:
            raise ValueError(f"need num_frames >= 1 and size >= 1, got {num_frames} and {size}")
        if frames_from not in ("video", "render"):
            raise ValueError(f"frames_from must be 'video' or 'render', got {frames_from!r}")
        self.data_dir, self.size, self.num_frames = Path(data_dir), int(size), int(num_frames)
        self.records = select_scene_records(data_dir, split, max_clips)
        self.captions = [r.caption for r in self.records]
        kind = "frames" if frames_from == "video" else "rendered"
        self.frames = cached_clip_arrays(data_dir, self.records, kind, self.size, self.num_frames, progress_bar)
        self.masks = (
            cached_clip_arrays(data_dir, self.records, "masks", self.size, self.num_frames, progress_bar)
            if with_masks
            else None
        )
        self.text_states, rows = cached_text_states(
            data_dir, self.captions, text_key, encode_text, progress_bar=progress_bar
        )
        self.text_rows = torch.tensor([rows[c] for c in self.captions])
        fps = {float(r.fps) for r in self.records}
        if len(fps) > 1:
            raise ValueError(f"the clips of {str(data_dir)!r} have different frame rates {sorted(fps)}")
        self.fps = fps.pop() if fps else None

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        if not 0 <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} clips")
        item = {
            "frames": torch.from_numpy(np.array(self.frames[index])),  # (F, S, S, 3) uint8, copied out of the mmap
            "text": self.text_states[self.text_rows[index]],  # (T, D)
            "index": torch.tensor(index),
        }
        if self.masks is not None:
            item["masks"] = torch.from_numpy(np.array(self.masks[index]))  # (F, S, S) uint8 labels
        return item
