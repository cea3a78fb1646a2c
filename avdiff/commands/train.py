"""``avdiff train JOB --config YAML``: train through the shared Accelerate trainer (``accelerate launch`` works too)."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "train",
        help="train a model (align, syncnet, talking-head, talking-head-motion, talking-head-mouth, segmenter, "
        "text-to-video)",
        description="Train a model from a YAML config. Jobs: align (the audio-text aligner), syncnet "
        "(the lip-sync expert), talking-head (the talking-head pipeline), talking-head-motion (the motion generator: "
        "speech to mouth, blinks and head pose), talking-head-mouth (the mouth painter: teeth and tongue inside the "
        "lips), segmenter (the scene "
        "segmenter) and text-to-video (the scene model).",
    )
    jobs = p.add_subparsers(dest="job", metavar="JOB", required=True)
    align = jobs.add_parser("align", help="contrastive audio-to-text aligner on synthetic sounds and speech")
    _common(align)
    align.set_defaults(func=run_align)
    syncnet = jobs.add_parser("syncnet", help="SyncNet-style audio-visual sync expert on DATA clips (LSE-C/LSE-D)")
    _common(syncnet)
    syncnet.add_argument("--data", help="training DATA folder (avdiff prepare or avdiff synth); overrides task.data")
    syncnet.add_argument("--eval-data", help="held-out DATA folder to score; overrides task.eval_data")
    syncnet.set_defaults(func=run_syncnet)
    talking = jobs.add_parser("talking-head", help="the talking-head pipeline (UNet + speech encoder) on DATA clips")
    _common(talking)
    talking.add_argument("--data", help="training DATA folder (avdiff prepare or avdiff synth); overrides task.data")
    talking.add_argument(
        "--eval-data", help="held-out DATA folder for the eval loss and samples; overrides task.eval_data"
    )
    talking.set_defaults(func=run_talking_head)
    motion = jobs.add_parser(
        "talking-head-motion",
        help="the motion generator (speech -> mouth, blinks, head pose) on synthetic speech and DATA motion tracks",
    )
    _common(motion)
    motion.add_argument(
        "--data", help="DATA folder whose clips have motion tracks (avdiff prepare), added to the synthetic speech"
    )
    motion.set_defaults(func=run_talking_head_motion)
    mouth = jobs.add_parser(
        "talking-head-mouth",
        help="the mouth painter (a latent video UNet painting teeth and tongue inside the lips) on synthetic faces",
    )
    _common(mouth)
    mouth.add_argument(
        "--data", help="DATA folder whose clips have landmark tracks (avdiff prepare), added to the synthetic faces"
    )
    mouth.set_defaults(func=run_talking_head_mouth)
    segmenter = jobs.add_parser(
        "segmenter", help="the scene segmenter (a small U-Net) on scene clips' frames and masks"
    )
    _common(segmenter)
    segmenter.add_argument("--data", help="training scene folder (avdiff synth scenes); overrides task.data")
    segmenter.add_argument(
        "--eval-data", help="held-out scene folder for pixel accuracy and mean IoU; overrides task.eval_data"
    )
    segmenter.set_defaults(func=run_segmenter)
    t2v = jobs.add_parser("text-to-video", help="the text-to-video (scene) pipeline's UNet on SCENES DATA clips")
    _common(t2v)
    t2v.add_argument("--data", help="training SCENES DATA folder (avdiff synth scenes); overrides task.data")
    t2v.add_argument(
        "--eval-data",
        help="held-out SCENES DATA folder for the eval losses and sample grids; overrides task.eval_data",
    )
    t2v.set_defaults(func=run_text_to_video)


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", required=True, help="training YAML (sections 'trainer' and 'task')")
    p.add_argument("--output-dir", help="override trainer.output_dir")
    p.add_argument("--max-steps", type=int, help="override trainer.max_steps")
    p.add_argument("--resume", action="store_true", help="continue from the latest checkpoint in the output dir")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def _configs(args: argparse.Namespace, with_data: bool = False):
    """(TrainConfig, task settings) from ``--config``, with the command line's overrides applied."""
    from avdiff.training.config import load_train_config

    trainer_cfg, task_cfg = load_train_config(
        args.config, {"output_dir": args.output_dir, "max_steps": args.max_steps}
    )
    if with_data:
        task_cfg.update({k: v for k, v in (("data", args.data), ("eval_data", args.eval_data)) if v is not None})
    return trainer_cfg, task_cfg


def _task_config(config_cls: type, task_cfg: dict):
    """The job's task config from the YAML's ``task:`` section; a setting it refuses is a CommandError."""
    from avdiff.commands import CommandError

    try:
        return config_cls.from_dict(task_cfg)
    except ValueError as e:
        raise CommandError(str(e)) from e


def _train_with_data(args: argparse.Namespace, config_cls: type, task_cls: type):
    """(the task config, the task, the run's result) of a job that trains on synthetic data plus any ``--data``;
    the result is None on a process other than the main one (under DDP the main process alone reports) or when no
    final model was written."""
    trainer_cfg, task_cfg = _configs(args)
    if args.data is not None:
        task_cfg["data"] = args.data
    config = _task_config(config_cls, task_cfg)
    task = task_cls(config, progress_bar=not args.no_progress)
    result = _train(task, trainer_cfg, args)
    return config, task, (result if result.is_main_process and result.final_dir.exists() else None)


def _data_task_config(args: argparse.Namespace, config_cls: type):
    """(TrainConfig, the job's task config) for a job that trains on a DATA folder; refuses a run with no data."""
    from avdiff.commands import CommandError

    trainer_cfg, task_cfg = _configs(args, with_data=True)
    config = config_cls.from_dict(task_cfg)
    if not config.data:
        raise CommandError("no training data: give --data DATA (a folder made by avdiff prepare or avdiff synth)")
    return trainer_cfg, config


def _train(task, trainer_cfg, args: argparse.Namespace):
    from avdiff.training import Trainer

    result = Trainer(task, trainer_cfg, progress_bar=not args.no_progress).train(resume=args.resume)
    print(f"trained {result.steps} steps; final model: {result.final_dir}")
    return result


def run_align(args: argparse.Namespace) -> int:
    from avdiff.encoders.alignment import AudioTextAligner
    from avdiff.training.align import AlignTask, AlignTaskConfig

    trainer_cfg, task_cfg = _configs(args)
    task = AlignTask(AlignTaskConfig.from_dict(task_cfg))
    result = _train(task, trainer_cfg, args)
    if result.final_dir.exists():
        metrics = task.evaluate(AudioTextAligner.from_pretrained(result.final_dir))
        print(
            f"held-out R@1: audio->text {metrics['a2t_r@1']:.3f}, text->audio {metrics['t2a_r@1']:.3f} "
            f"(chance {metrics['chance_a2t_r@1']:.3f}); see: avdiff eval align --checkpoint {result.final_dir}"
        )
        if "scene_token_acc" in metrics:
            print(
                f"held-out scene sounds: select_token picks the sounding word {metrics['scene_token_acc']:.3f} of "
                f"the time (chance {metrics['scene_token_chance']:.3f})"
            )
    return 0


def run_syncnet(args: argparse.Namespace) -> int:
    from avdiff.models.syncnet import SyncNet
    from avdiff.training.syncnet import SyncNetTask, SyncNetTaskConfig

    trainer_cfg, config = _data_task_config(args, SyncNetTaskConfig)
    task = SyncNetTask(config, progress_bar=not args.no_progress)
    result = _train(task, trainer_cfg, args)
    if result.final_dir.exists() and config.eval_data:
        m = task.evaluate(SyncNet.from_pretrained(result.final_dir))
        print(
            f"held-out ({int(m['clips'])} clips): LSE-C {m['lse_c_sync']:.3f} in sync vs {m['lse_c_shifted']:.3f} "
            f"with the audio {config.eval_shift} frames late; LSE-D {m['lse_d_sync']:.3f} vs {m['lse_d_shifted']:.3f}; "
            f"best offset within 1 frame: {m['offset_within_1_sync']:.0%} in sync, "
            f"{m['offset_within_1_shifted']:.0%} shifted"
        )
    print(f"score a video: avdiff eval lipsync VIDEO --syncnet {result.final_dir}")
    return 0


def run_segmenter(args: argparse.Namespace) -> int:
    from avdiff.commands import CommandError
    from avdiff.models.segmenter import SceneSegmenter
    from avdiff.training.segmenter import SegmenterTask, SegmenterTaskConfig

    trainer_cfg, task_cfg = _configs(args, with_data=True)
    config = SegmenterTaskConfig.from_dict(task_cfg)
    if not config.data:
        raise CommandError("no training data: give --data DIR (a scene folder made by avdiff synth scenes)")
    task = SegmenterTask(config, progress_bar=not args.no_progress)
    result = _train(task, trainer_cfg, args)
    if result.final_dir.exists() and config.eval_data:
        m = task.evaluate(SceneSegmenter.from_pretrained(result.final_dir))
        print(
            f"held-out frames of {config.eval_data}: pixel accuracy {m['pixel_accuracy']:.4f}, "
            f"mean IoU {m['mean_iou']:.4f}; see: avdiff eval segmenter --checkpoint {result.final_dir} "
            f"--data {config.eval_data}"
        )
    return 0


def run_talking_head(args: argparse.Namespace) -> int:
    from avdiff.training.talking_head import TalkingHeadTask, TalkingHeadTaskConfig

    trainer_cfg, config = _data_task_config(args, TalkingHeadTaskConfig)
    task = TalkingHeadTask(config, output_dir=trainer_cfg.output_dir, progress_bar=not args.no_progress)
    result = _train(task, trainer_cfg, args)
    if result.final_dir.exists():
        print(
            f"animate a photo: avdiff talk --model {result.final_dir} --image FACE --audio SPEECH --out OUT.mp4 "
            f"--chunk-frames {config.chunk_frames} "
            f"--motion-frames {config.motion_frames}"
        )
    return 0


def run_talking_head_motion(args: argparse.Namespace) -> int:
    from avdiff.pipelines.talking_head import MotionTalkingHeadPipeline
    from avdiff.training.talking_head_motion import SCORES, MotionTask, MotionTaskConfig

    config, task, result = _train_with_data(args, MotionTaskConfig, MotionTask)
    if result is None:
        return 0
    if config.eval_utterances:
        # the trainer's own evaluation of the final weights when it ran at the last step, else one here
        m = result.eval_metrics or task.evaluate(
            MotionTalkingHeadPipeline.from_pretrained(result.final_dir).motion_model
        )
        print(f"held-out ({int(m['clips'])} clips, guidance {config.eval_guidance}) vs the audio-dropped twin:")
        for name in SCORES:
            print(
                f"  {name}: {m[name]:.3f} vs {m['twin_' + name]:.3f} (model wins on {m['wins_' + name]:.0%} of clips)"
            )
        for rate in config.eval_blink_rates:
            key = f"{rate:g}"
            print(
                f"  blinks asked {key}/min: made {m['blinks_at_' + key]:.1f}/min over {m['blink_minutes']:.1f} min, "
                f"{m['blink_s_min_at_' + key]:.2f}-{m['blink_s_max_at_' + key]:.2f} s long, eyes open at most "
                f"{m['longest_open_s_at_' + key]:.1f} s (the model alone: {m['model_blinks_at_' + key]:.1f}/min, "
                f"open at most {m['model_longest_open_s_at_' + key]:.1f} s)"
            )
    print(f"talk: avdiff talk --model {result.final_dir} --image FACE --audio SPEECH --out talk.mp4")
    return 0


def run_talking_head_mouth(args: argparse.Namespace) -> int:
    from avdiff.training.mouth_painter import MouthPainterTask, MouthPainterTaskConfig

    config, task, result = _train_with_data(args, MouthPainterTaskConfig, MouthPainterTask)
    if result is None:
        return 0
    if config.eval_utterances:
        m = result.eval_metrics or task.evaluate(_painter_of(result.final_dir))
        print(
            f"held-out mouths ({int(m['clips'])} clips, guidance {config.eval_guidance}): error inside the lips "
            f"{m['hole_mae']:.1f} grey levels, audio-dropped twin {m['twin_hole_mae']:.1f} (painter wins on "
            f"{m['wins_over_twin']:.0%} of clips), renderer's cavity {m['cavity_hole_mae']:.1f} (wins on "
            f"{m['wins_over_cavity']:.0%}); sharpness {m['sharpness_ratio']:.2f}x the truth's"
        )
    print(f"talk: avdiff talk --model {result.final_dir} --paint-mouth --image FACE --audio SPEECH --out talk.mp4")
    return 0


def _painter_of(folder):
    from avdiff.pipelines.talking_head import MotionTalkingHeadPipeline

    return MotionTalkingHeadPipeline.from_pretrained(folder).mouth_painter


def run_text_to_video(args: argparse.Namespace) -> int:
    from avdiff.training.text_to_video import TextToVideoTask, TextToVideoTaskConfig

    trainer_cfg, config = _data_task_config(args, TextToVideoTaskConfig)
    task = TextToVideoTask(config, output_dir=trainer_cfg.output_dir, progress_bar=not args.no_progress)
    result = _train(task, trainer_cfg, args)
    if result.final_dir.exists():
        print(
            f"generate: TextToVideoPipeline.from_pretrained({str(result.final_dir)!r}); sample grids in "
            f"{trainer_cfg.output_dir}/samples/"
        )
    return 0
