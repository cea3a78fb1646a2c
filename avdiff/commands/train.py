"""``avdiff train JOB --config YAML``: train through the shared Accelerate trainer (``accelerate launch`` works too)."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train", help="train a model (align)", description="Train a model from a YAML config.")
    jobs = p.add_subparsers(dest="job", metavar="JOB", required=True)
    align = jobs.add_parser("align", help="contrastive audio-to-text aligner on synthetic sounds and speech")
    _common(align)
    align.set_defaults(func=run_align)


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", required=True, help="training YAML (sections 'trainer' and 'task')")
    p.add_argument("--output-dir", help="override trainer.output_dir")
    p.add_argument("--max-steps", type=int, help="override trainer.max_steps")
    p.add_argument("--resume", action="store_true", help="continue from the latest checkpoint in the output dir")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def run_align(args: argparse.Namespace) -> int:
    from avdiff.encoders.alignment import AudioTextAligner
    from avdiff.training import Trainer
    from avdiff.training.align import AlignTask, AlignTaskConfig
    from avdiff.training.config import load_train_config

    trainer_cfg, task_cfg = load_train_config(args.config, {"output_dir": args.output_dir, "max_steps": args.max_steps})
    task = AlignTask(AlignTaskConfig.from_dict(task_cfg))
    result = Trainer(task, trainer_cfg, progress_bar=not args.no_progress).train(resume=args.resume)
    print(f"trained {result.steps} steps; final model: {result.final_dir}")
    if result.final_dir.exists():
        metrics = task.evaluate(AudioTextAligner.from_pretrained(result.final_dir))
        print(f"held-out R@1: audio->text {metrics['a2t_r@1']:.3f}, text->audio {metrics['t2a_r@1']:.3f} "
              f"(chance {metrics['chance_a2t_r@1']:.3f}); see: avdiff eval align --checkpoint {result.final_dir}")
    return 0
