"""A small fully convolutional segmenter (a U-Net, Ronneberger et al. 2015) for the 64x64 scene world.

It labels every pixel of a frame with one of the scene labels (sky, ground, campfire, ...), so the prompt fidelity of
generated frames can be measured against known truth (:mod:`avdiff.evaluation.scene`). Trained by ``avdiff train
segmenter`` on the generator's frames and masks (:mod:`avdiff.training.segmenter`); a trained one ships inside the
package and loads by name: ``load_segmenter("scene_segmenter")``.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file
from torch import nn

from avdiff.bundled import resolve_model_dir

logger = logging.getLogger(__name__)

CONFIG_NAME, WEIGHTS_NAME = "segmenter_config.json", "segmenter.safetensors"


@dataclass
class SegmenterConfig:
    """Shape of the segmenter.

    Attributes:
        labels: label names, index = class (the scene vocabulary's labels, ``avdiff.data.scenes.vocabulary.LABELS``,
            passed by the caller).
        width: channels of the first level; level ``k`` has ``width * 2**min(k, 2)``.
        levels: resolutions (each halves the previous one); 4 levels see 8x8 at the bottom of a 64x64 frame.
    """

    labels: list[str]
    width: int = 16
    levels: int = 4

    def __post_init__(self):
        if self.width < 4 or self.levels < 1 or len(self.labels) < 2:
            raise ValueError(
                f"bad segmenter config: width={self.width}, levels={self.levels}, {len(self.labels)} labels"
            )

    @property
    def num_labels(self) -> int:
        return len(self.labels)


def _block(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, padding=1),
        nn.GroupNorm(4, cout),
        nn.GELU(),
        nn.Conv2d(cout, cout, 3, padding=1),
        nn.GroupNorm(4, cout),
        nn.GELU(),
    )


class SceneSegmenter(nn.Module):
    """Frames in, per-pixel label logits out.

    ``forward(x)``: float [B, 3, H, W] in [-1, 1] (H and W divisible by ``2**(levels-1)``) -> logits
    [B, num_labels, H, W]. :meth:`predict` takes uint8 frames and gives labels.
    """

    def __init__(self, config: SegmenterConfig):
        super().__init__()
        self.config = c = config
        widths = [c.width * 2 ** min(k, 2) for k in range(c.levels)]
        self.widths = widths
        self.down = nn.ModuleList([_block(3 if k == 0 else widths[k - 1], widths[k]) for k in range(c.levels)])
        self.up = nn.ModuleList([_block(widths[k + 1] + widths[k], widths[k]) for k in range(c.levels - 1)])
        self.head = nn.Conv2d(widths[0], c.num_labels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        factor = 2 ** (self.config.levels - 1)
        if x.ndim != 4 or x.shape[1] != 3 or x.shape[2] % factor or x.shape[3] % factor:
            raise ValueError(f"x must be [B, 3, H, W] with H and W divisible by {factor}, got {tuple(x.shape)}")
        skips = []
        for k, block in enumerate(self.down):
            x = block(x if k == 0 else F.max_pool2d(x, 2))
            skips.append(x)
        for k in reversed(range(len(self.up))):
            x = F.interpolate(x, scale_factor=2, mode="nearest")
            x = self.up[k](torch.cat([x, skips[k]], dim=1))
        return self.head(x)

    @staticmethod
    def to_input(frames: np.ndarray | torch.Tensor) -> torch.Tensor:
        """uint8 frames [F, H, W, 3] (or one [H, W, 3]) -> float [F, 3, H, W] in [-1, 1]."""
        x = torch.as_tensor(np.asarray(frames) if not isinstance(frames, torch.Tensor) else frames)
        if x.ndim == 3:
            x = x[None]
        if x.ndim != 4 or x.shape[-1] != 3 or x.dtype != torch.uint8:
            raise ValueError(f"frames must be uint8 [F, H, W, 3], got {x.dtype} of shape {tuple(x.shape)}")
        return x.permute(0, 3, 1, 2).float() / 127.5 - 1.0

    @torch.no_grad()
    def predict(self, frames: np.ndarray | torch.Tensor, batch_size: int = 64) -> np.ndarray:
        """uint8 frames [F, H, W, 3] -> labels uint8 [F, H, W] (index into ``config.labels``)."""
        x = self.to_input(frames)
        device = next(self.parameters()).device
        was_training = self.training
        self.eval()
        out = [self(chunk.to(device)).argmax(dim=1).to(torch.uint8).cpu() for chunk in x.split(batch_size)]
        self.train(was_training)
        return torch.cat(out).numpy()

    # --- saving ---------------------------------------------------------------------------------------------

    def save_pretrained(self, path: str | os.PathLike) -> None:
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        (path / CONFIG_NAME).write_text(json.dumps(asdict(self.config), indent=2))
        save_file({k: v.contiguous() for k, v in self.state_dict().items()}, str(path / WEIGHTS_NAME))

    @classmethod
    def from_pretrained(cls, path: str | os.PathLike) -> SceneSegmenter:
        """A folder written by :meth:`save_pretrained` (or ``avdiff train segmenter``'s ``final``)."""
        path = Path(path)
        if not (path / CONFIG_NAME).is_file():
            raise FileNotFoundError(f"{str(path)!r} holds no segmenter (no {CONFIG_NAME})")
        model = cls(SegmenterConfig(**json.loads((path / CONFIG_NAME).read_text())))
        model.load_state_dict(load_file(str(path / WEIGHTS_NAME)))
        return model.eval()


def load_segmenter(name_or_path: str | os.PathLike = "scene_segmenter") -> SceneSegmenter:
    """A trained segmenter: a bundled name (``"scene_segmenter"``) or a folder (``RUN/final``).

    Raises:
        FileNotFoundError: neither a bundled name nor a folder holding a segmenter.
    """
    return SceneSegmenter.from_pretrained(resolve_model_dir(name_or_path, CONFIG_NAME, "segmenter"))
