"""One Accelerate trainer for every job (alignment, talking heads, VAE, SyncNet).

A job is a :class:`TrainTask`: it builds the model and the dataset, computes the loss of a batch, and saves the
final model. The trainer owns everything else: devices and DDP (through Accelerate, so ``accelerate launch`` gives
many GPUs or CPU processes), mixed precision, gradient clipping, an optional EMA of the weights, a progress bar,
JSONL logs, periodic atomic checkpoints and exact resumption.

Resumption is exact by construction, not by saving every RNG: the batch order of step ``s`` comes from a permutation
seeded by ``(seed, epoch)``, and before the task draws its noise each process reseeds torch with
:func:`step_seed` ``(seed, s, rank)``. A run killed after step ``N`` and resumed from its checkpoint therefore sees the
same batches and the same randomness as an uninterrupted run.

Every DDP rank draws its own stream (noise, timesteps, dropout): rank 0 uses ``seed * 1_000_003 + s + 1`` (what
single-process runs have always used, so they are unchanged), rank ``r > 0`` a 32-bit hash of ``(seed, s, r)`` by
numpy's ``SeedSequence``. With one stream for all, the ranks of a step would draw identical noise for their different
samples and add less than one process's worth of new randomness. (torch's CPU generator keeps only the low 32 bits of
a seed, so a stream is picked by a hash, not by adding a large offset per rank.)
"""

from __future__ import annotations

import collections
import json
import logging
import math
import os
import shutil
import time
from collections.abc import Hashable, Iterator, Sequence
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler
from tqdm.auto import tqdm

from avdiff.loading import CHECKPOINT_PREFIX  # the checkpoint format is read (by loading.py) below training

logger = logging.getLogger(__name__)


@dataclass
class TrainConfig:
    """Trainer settings (the ``trainer:`` section of a training YAML).

    Attributes:
        output_dir: run folder: ``checkpoints/``, ``final/``, ``logs.jsonl``, ``config.json``.
        max_steps: optimiser steps in all.
        batch_size: per process.
        lr, weight_decay, warmup_steps: AdamW with linear warm-up then cosine decay to ``min_lr_ratio * lr``.
        grad_clip: max gradient norm (0 = off).
        mixed_precision: ``"no"``, ``"bf16"`` or ``"fp16"``.
        ema_decay: keep an exponential moving average of the weights (None = off); the final model is the EMA.
        log_every, checkpoint_every, eval_every: in steps (0 = never; a checkpoint is always written at the end).
        keep_checkpoints: how many recent checkpoints to keep.
        seed: the one seed of the run.
        num_workers: DataLoader workers.
    """

    output_dir: str = "runs/default"
    max_steps: int = 1000
    batch_size: int = 16
    lr: float = 1e-3
    weight_decay: float = 0.01
    warmup_steps: int = 0
    min_lr_ratio: float = 0.1
    grad_clip: float = 1.0
    mixed_precision: str = "no"
    ema_decay: float | None = None
    log_every: int = 10
    checkpoint_every: int = 0
    eval_every: int = 0
    keep_checkpoints: int = 2
    seed: int = 0
    num_workers: int = 0
    gradient_checkpointing: bool = False

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> TrainConfig:
        config = strict_from_dict(cls, values, "trainer")
        config.validate()
        return config

    def validate(self) -> None:
        if self.max_steps < 1:
            raise ValueError(f"max_steps must be >= 1, got {self.max_steps}")
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {self.batch_size}")
        if self.mixed_precision not in ("no", "bf16", "fp16"):
            raise ValueError(f"mixed_precision must be 'no', 'bf16' or 'fp16', got {self.mixed_precision!r}")
        if self.ema_decay is not None and not 0 < self.ema_decay < 1:
            raise ValueError(f"ema_decay must be in (0, 1) or null, got {self.ema_decay}")


def step_seed(seed: int, step: int, rank: int = 0) -> int:
    """The torch seed of process ``rank`` at optimiser step ``step`` (0-based) of a run seeded with ``seed``.

    Rank 0: ``seed * 1_000_003 + step + 1``. Rank ``r > 0``: a 32-bit value drawn from
    ``numpy.random.SeedSequence([seed, step, r])``, so every rank has its own stream, which is still a function of
    (seed, step, rank) alone and hence the same after a resume."""
    if step < 0 or rank < 0:
        raise ValueError(f"step and rank must be >= 0, got step={step}, rank={rank}")
    if rank == 0:
        return seed * 1_000_003 + step + 1
    return int(np.random.SeedSequence([seed % 2**64, step, rank]).generate_state(1, np.uint32)[0])


def strict_from_dict(cls: type, values: dict[str, Any], what: str):
    """Build dataclass ``cls`` from ``values``, refusing unknown keys with a message that lists the known ones
    (a typo in a YAML must not be silently ignored)."""
    known = {f.name for f in fields(cls)}
    unknown = set(values) - known
    if unknown:
        raise ValueError(f"unknown {what} settings {sorted(unknown)}; known: {sorted(known)}")
    return cls(**values)


class TrainTask(Protocol):
    """What a job gives the trainer."""

    def build_model(self) -> torch.nn.Module: ...

    def build_dataset(self) -> Dataset:
        """The training items. A dataset with a ``batch_groups`` attribute (one key per item) is batched within
        groups (:class:`StepBatchSampler`)."""
        ...

    def compute_loss(self, model: torch.nn.Module, batch: Any, step: int) -> tuple[torch.Tensor, dict[str, float]]:
        """Loss of one batch (a scalar tensor) and numbers to log. Randomness comes from torch's global RNG,
        which the trainer seeds per step."""
        ...

    def save_model(self, model: torch.nn.Module, path: Path) -> None: ...

    def evaluate(self, model: torch.nn.Module, step: int) -> dict[str, float]:
        """Optional: metrics on held-out data (called on the main process every ``eval_every`` steps)."""
        ...


class StepBatchSampler(Sampler[list[int]]):
    """Batches for steps ``start_step, start_step + 1, ...`` up to ``max_steps``, in an order fixed by the seed.

    Epoch ``e`` is ``torch.randperm(n)`` under a generator seeded with ``seed * 1_000_003 + e``; the last partial
    batch of an epoch is dropped. Step ``s`` always gets the same indices, whatever step the run started from.

    With ``groups`` (one key per item: items of different keys cannot share a batch, e.g. crops of different sizes,
    as aspect-ratio bucketing does), each group's items are taken in the epoch's order and cut into whole batches
    (a group's last partial batch is dropped), and the epoch's batches are shuffled by the same generator.
    """

    def __init__(
        self,
        dataset_size: int,
        batch_size: int,
        max_steps: int,
        seed: int,
        start_step: int = 0,
        groups: Sequence[Hashable] | None = None,
    ):
        if dataset_size < batch_size:
            raise ValueError(f"the dataset has {dataset_size} items, fewer than batch_size={batch_size}")
        self.n, self.batch_size, self.max_steps, self.seed = dataset_size, batch_size, max_steps, seed
        self.start_step = start_step
        self.groups = None if groups is None else list(groups)
        if self.groups is None:
            self.steps_per_epoch = dataset_size // batch_size
        else:
            if len(self.groups) != dataset_size:
                raise ValueError(f"groups has {len(self.groups)} keys for {dataset_size} items")
            counts = collections.Counter(self.groups)
            self.steps_per_epoch = sum(c // batch_size for c in counts.values())
            if not self.steps_per_epoch:
                raise ValueError(f"no group has batch_size={batch_size} items (group sizes: {dict(counts)})")
            dropped = {g: n for g, n in counts.items() if n < batch_size}
            if dropped:
                logger.warning(
                    "groups with fewer items than a batch (%d) are never trained on: %s", batch_size, dropped
                )
        self._epoch: tuple[int, list[list[int]]] | None = None

    def __len__(self) -> int:
        return max(0, self.max_steps - self.start_step)

    def batch(self, step: int) -> list[int]:
        epoch, k = divmod(step, self.steps_per_epoch)
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
        order = torch.randperm(self.n, generator=g)
        if self.groups is None:
            return order[k * self.batch_size : (k + 1) * self.batch_size].tolist()
        if self._epoch is None or self._epoch[0] != epoch:
            members: dict[Hashable, list[int]] = {}
            for i in order.tolist():
                members.setdefault(self.groups[i], []).append(i)
            batches = [
                items[j : j + self.batch_size]
                for items in members.values()
                for j in range(0, len(items) - self.batch_size + 1, self.batch_size)
            ]
            shuffle = torch.randperm(len(batches), generator=g).tolist()
            self._epoch = (epoch, [batches[j] for j in shuffle])
        return self._epoch[1][k]

    def __iter__(self) -> Iterator[list[int]]:
        for step in range(self.start_step, self.max_steps):
            yield self.batch(step)


@dataclass
class TrainResult:
    """What a finished run leaves: its folder, the final model's folder, the steps done and the last logs.

    Attributes:
        eval_metrics: the task's ``evaluate`` metrics (unprefixed) of the final weights, when the run evaluated at its
            last step (``eval_every`` divides ``max_steps`` and the run got there); empty otherwise, and always empty
            on processes other than the main one, which alone evaluates. A job's command prints these rather than
            evaluating the final model again.
        is_main_process: this process is the main one (under DDP only it should report or evaluate).
    """

    output_dir: Path
    final_dir: Path
    steps: int
    last_logs: dict[str, float] = field(default_factory=dict)
    eval_metrics: dict[str, float] = field(default_factory=dict)
    is_main_process: bool = True


class Trainer:
    """Runs a :class:`TrainTask` under Accelerate.

    Args:
        task: the job.
        config: trainer settings.
        progress_bar: show a tqdm bar on the main process.
    """

    def __init__(self, task: TrainTask, config: TrainConfig, progress_bar: bool = True):
        config.validate()
        self.task, self.config, self.progress_bar = task, config, progress_bar
        self.output_dir = Path(config.output_dir)
        self._last_eval: tuple[int, dict[str, float]] | None = None  # (step, metrics) of the latest evaluation

    # --- public ---------------------------------------------------------------------------------------------

    def train(self, resume: bool = False, stop_after: int | None = None) -> TrainResult:
        """Train to ``max_steps`` (or stop early after ``stop_after`` steps of this call, as a kill would).

        With ``resume``, continue from the latest complete checkpoint in ``output_dir`` (from scratch if none).
        """
        from accelerate import Accelerator
        from accelerate.utils import DataLoaderConfiguration, set_seed

        cfg = self.config
        # Each step draws one global batch (batch_size per process) and splits it across processes, so a step means
        # the same data whatever the number of processes.
        accelerator = Accelerator(
            mixed_precision=cfg.mixed_precision,
            cpu=not torch.cuda.is_available(),
            dataloader_config=DataLoaderConfiguration(split_batches=True),
        )
        set_seed(cfg.seed)
        model = self.task.build_model()
        own_buffer_storage(model)
        if cfg.gradient_checkpointing and hasattr(model, "enable_gradient_checkpointing"):
            model.enable_gradient_checkpointing()
        optimizer = torch.optim.AdamW(
            [p for p in model.parameters() if p.requires_grad], lr=cfg.lr, weight_decay=cfg.weight_decay
        )
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, self._lr_lambda)
        ema = self._build_ema(model)
        model, optimizer, scheduler = accelerator.prepare(model, optimizer, scheduler)
        if ema is not None:
            ema.to(accelerator.device)
            accelerator.register_for_checkpointing(ema)

        start = self._maybe_resume(accelerator) if resume else 0
        dataset = self.task.build_dataset()
        global_batch = cfg.batch_size * accelerator.num_processes
        groups = getattr(dataset, "batch_groups", None)  # items that cannot share a batch (e.g. other sizes)
        sampler = StepBatchSampler(len(dataset), global_batch, cfg.max_steps, cfg.seed, start, groups)
        loader = accelerator.prepare_data_loader(
            DataLoader(dataset, batch_sampler=sampler, num_workers=cfg.num_workers), device_placement=True
        )
        if accelerator.is_main_process:
            self._write_run_config()
        end = cfg.max_steps if stop_after is None else min(cfg.max_steps, start + stop_after)
        self._last_eval = None
        logs = self._loop(accelerator, model, optimizer, scheduler, ema, loader, start, end)
        final_dir = self.output_dir / "final"
        if end == cfg.max_steps:
            self._finish(accelerator, model, ema, final_dir)
        evaluated_at, metrics = self._last_eval or (None, {})
        final_metrics = dict(metrics) if evaluated_at == cfg.max_steps else {}
        is_main = accelerator.is_main_process
        accelerator.end_training()
        return TrainResult(self.output_dir, final_dir, end, logs, final_metrics, is_main)

    # --- the loop -------------------------------------------------------------------------------------------

    def _loop(self, accelerator, model, optimizer, scheduler, ema, loader, start: int, end: int) -> dict[str, float]:
        cfg = self.config
        bar = tqdm(
            total=cfg.max_steps,
            initial=start,
            desc="train",
            unit="step",
            disable=not (self.progress_bar and accelerator.is_main_process),
        )
        logs: dict[str, float] = {}
        step, tick = start, time.perf_counter()
        model.train()
        for batch in loader:
            if step >= end:
                break
            torch.manual_seed(step_seed(cfg.seed, step, accelerator.process_index))  # the same after a resume
            loss, extra = self.task.compute_loss(model, batch, step)
            if not torch.isfinite(loss):
                raise FloatingPointError(f"loss is {loss.item()} at step {step}; lower lr or check the data")
            accelerator.backward(loss)
            if cfg.grad_clip > 0 and accelerator.sync_gradients:
                accelerator.clip_grad_norm_(model.parameters(), cfg.grad_clip)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            if ema is not None:
                ema.step(accelerator.unwrap_model(model).parameters())
            step += 1
            bar.update(1)
            logs = {"step": step, "loss": float(loss.detach()), "lr": scheduler.get_last_lr()[0], **extra}
            if cfg.log_every and step % cfg.log_every == 0:
                logs["s_per_step"] = (time.perf_counter() - tick) / cfg.log_every
                tick = time.perf_counter()
                bar.set_postfix(loss=f"{logs['loss']:.4f}")
                self._log(accelerator, logs)
            if cfg.eval_every and step % cfg.eval_every == 0 and hasattr(self.task, "evaluate"):
                self._evaluate(accelerator, model, ema, step)
            if cfg.checkpoint_every and step % cfg.checkpoint_every == 0 and step < cfg.max_steps:
                self._checkpoint(accelerator, step)
        bar.close()
        if step > start and (step == cfg.max_steps or not cfg.checkpoint_every or step % cfg.checkpoint_every):
            self._checkpoint(accelerator, step)
        return logs

    def _lr_lambda(self, step: int) -> float:
        cfg = self.config
        if cfg.warmup_steps and step < cfg.warmup_steps:
            return (step + 1) / cfg.warmup_steps
        progress = (step - cfg.warmup_steps) / max(1, cfg.max_steps - cfg.warmup_steps)
        return cfg.min_lr_ratio + (1 - cfg.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))

    def _build_ema(self, model: torch.nn.Module):
        if self.config.ema_decay is None:
            return None
        from diffusers.training_utils import EMAModel

        return EMAModel(model.parameters(), decay=self.config.ema_decay)

    def _evaluate(self, accelerator, model, ema, step: int) -> None:
        accelerator.wait_for_everyone()
        if accelerator.is_main_process:
            model.eval()
            with torch.no_grad(), _ema_weights(ema, accelerator.unwrap_model(model)):
                metrics = self.task.evaluate(accelerator.unwrap_model(model), step)
            model.train()
            self._last_eval = (step, metrics)
            self._log(accelerator, {"step": step, **{f"eval/{k}": v for k, v in metrics.items()}})

    def _log(self, accelerator, record: dict) -> None:
        if accelerator.is_main_process:
            self.output_dir.mkdir(parents=True, exist_ok=True)
            with open(self.output_dir / "logs.jsonl", "a") as f:
                f.write(json.dumps(record) + "\n")
            logger.info(
                "%s", " ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in record.items())
            )

    # --- checkpoints ----------------------------------------------------------------------------------------

    def checkpoints(self) -> list[Path]:
        """Complete checkpoints in ``output_dir``, oldest first."""
        folder = self.output_dir / "checkpoints"
        if not folder.is_dir():
            return []
        done = [p for p in folder.iterdir() if p.name.startswith(CHECKPOINT_PREFIX) and (p / "DONE").exists()]
        return sorted(done, key=lambda p: int(p.name[len(CHECKPOINT_PREFIX) :]))

    def _checkpoint(self, accelerator, step: int) -> None:
        """Save the full training state to ``checkpoints/step_N`` atomically (write to a temp folder, rename)."""
        folder = self.output_dir / "checkpoints"
        final = folder / f"{CHECKPOINT_PREFIX}{step}"
        tmp = folder / f".tmp_{CHECKPOINT_PREFIX}{step}"
        accelerator.wait_for_everyone()
        if accelerator.is_main_process:
            shutil.rmtree(tmp, ignore_errors=True)
            folder.mkdir(parents=True, exist_ok=True)
        accelerator.wait_for_everyone()
        accelerator.save_state(str(tmp))
        accelerator.wait_for_everyone()
        if accelerator.is_main_process:
            (tmp / "DONE").write_text(json.dumps({"step": step}))
            shutil.rmtree(final, ignore_errors=True)
            os.replace(tmp, final)
            for old in self.checkpoints()[: -self.config.keep_checkpoints]:
                shutil.rmtree(old, ignore_errors=True)
            logger.info("checkpoint: %s", final)
        accelerator.wait_for_everyone()

    def _maybe_resume(self, accelerator) -> int:
        found = self.checkpoints()
        if not found:
            logger.warning("no checkpoint in %s; starting from scratch", self.output_dir)
            return 0
        latest = found[-1]
        accelerator.load_state(str(latest))
        step = json.loads((latest / "DONE").read_text())["step"]
        logger.info("resumed from %s (step %d)", latest, step)
        return int(step)

    def _finish(self, accelerator, model, ema, final_dir: Path) -> None:
        accelerator.wait_for_everyone()
        if accelerator.is_main_process:
            unwrapped = accelerator.unwrap_model(model)
            tmp = final_dir.with_name(".tmp_final")
            shutil.rmtree(tmp, ignore_errors=True)
            tmp.mkdir(parents=True)
            with _ema_weights(ema, unwrapped):
                self.task.save_model(unwrapped, tmp)
            shutil.rmtree(final_dir, ignore_errors=True)
            os.replace(tmp, final_dir)
            logger.info("final model: %s", final_dir)
        accelerator.wait_for_everyone()

    def _write_run_config(self) -> None:
        self.output_dir.mkdir(parents=True, exist_ok=True)
        record = {"trainer": asdict(self.config), "task": getattr(self.task, "config_dict", lambda: {})()}
        (self.output_dir / "config.json").write_text(json.dumps(record, indent=2, default=str))


def own_buffer_storage(module: torch.nn.Module) -> None:
    """Give every buffer that is a view into a larger storage its own copy.

    torch's periodic Hann window (every log-mel's window) is a slice of a one-longer window, and safetensors refuses
    to load such a tensor, which would break ``Accelerator.load_state`` (resuming) for any model that holds one.
    """
    for sub in module.modules():
        for name, buf in list(sub._buffers.items()):
            if buf is not None and buf.untyped_storage().nbytes() != buf.numel() * buf.element_size():
                sub._buffers[name] = buf.clone()


class _ema_weights:
    """Context manager: the model holds the EMA weights inside, its own weights again after."""

    def __init__(self, ema, model: torch.nn.Module):
        self.ema, self.model = ema, model

    def __enter__(self):
        if self.ema is not None:
            self.ema.store(self.model.parameters())
            self.ema.copy_to(self.model.parameters())

    def __exit__(self, *exc):
        if self.ema is not None:
            self.ema.restore(self.model.parameters())
        return False
