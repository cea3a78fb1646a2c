"""A toy training job for the multi-process tests of the trainer (``tests/training/test_trainer.py``), run under torchrun:

    python -m torch.distributed.run --standalone --nproc_per_node 2 tests/ddp_toy.py OUT [--stop-after K] [--resume]

It regresses y = x @ w with dropout and noisy targets, so randomness matters at every step, and each rank writes the
noise it drew at every step to ``OUT/draws_rank{R}.json``.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

import torch
from torch.utils.data import TensorDataset

from avdiff.training import TrainConfig, Trainer


class DrawingToyTask:
    def __init__(self, n: int = 64):
        g = torch.Generator().manual_seed(123)
        self.x = torch.randn(n, 8, generator=g)
        self.y = self.x @ torch.randn(8, 1, generator=g)
        self.draws: dict[int, list[float]] = {}

    def build_model(self):
        return torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.Dropout(0.2), torch.nn.Linear(16, 1))

    def build_dataset(self):
        return TensorDataset(self.x, self.y)

    def compute_loss(self, model, batch, step):
        x, y = batch
        noise = 0.1 * torch.randn_like(y)  # (B_per_rank, 1)
        self.draws[step] = noise.flatten().tolist()
        return torch.nn.functional.mse_loss(model(x), y + noise), {}

    def save_model(self, model, path: Path):
        torch.save(model.state_dict(), path / "model.pt")


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("out")
    p.add_argument("--stop-after", type=int)
    p.add_argument("--resume", action="store_true")
    args = p.parse_args()
    torch.set_num_threads(1)
    config = TrainConfig(
        output_dir=args.out,
        max_steps=8,
        batch_size=4,
        lr=0.01,
        checkpoint_every=2,
        log_every=0,
        seed=3,
        keep_checkpoints=10,
    )
    task = DrawingToyTask()
    Trainer(task, config, progress_bar=False).train(resume=args.resume, stop_after=args.stop_after)
    rank = int(os.environ.get("RANK", "0"))  # set by torchrun (the process group is gone after train())
    part = "resumed" if args.resume else "first"
    path = Path(args.out) / f"draws_{part}_rank{rank}.json"
    path.write_text(json.dumps({str(k): v for k, v in task.draws.items()}))


if __name__ == "__main__":
    main()
