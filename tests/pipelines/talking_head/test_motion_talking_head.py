"""MotionTalkingHeadPipeline on a tiny random motion model: the contract of a pipeline (seeds, audio, lengths, sizes,
streaming, saving), checked on the photo's own resolution."""

import numpy as np
import pytest
import skimage.data
import torch

from avdiff.audio.clock import FrameClock
from avdiff.models.builders import build_motion_denoiser
from avdiff.pipelines import MotionTalkingHeadPipeline
from avdiff.video import read_video
from avdiff.video.face import NoFaceError

from media import bursts as speech  # speech-like noise bursts

PHOTO = skimage.data.astronaut()


@pytest.fixture(scope="module")
def pipe():
    pipe = MotionTalkingHeadPipeline(build_motion_denoiser("tiny", seed=0, window_frames=16, past_frames=4))
    pipe.set_progress_bar_config(disable=True)
    return pipe


def run(pipe, audio, seed=0, **kwargs):
    return pipe(PHOTO, audio, generator=torch.Generator().manual_seed(seed), num_inference_steps=3, **kwargs)


def test_frames_follow_the_clock_at_the_photos_size_and_the_seed_decides(pipe):
    audio = speech(1.3, 0)
    out = run(pipe, audio)
    n = FrameClock(25, 16000).num_frames(audio.samples.shape[-1])
    assert out.frames.shape == (n, 512, 512, 3) and out.frames.dtype == np.uint8 and len(out.motion) == n
    again = run(pipe, audio)
    np.testing.assert_array_equal(out.frames, again.frames)
    np.testing.assert_array_equal(out.motion.as_array(), again.motion.as_array())
    other = run(pipe, audio, seed=1)
    assert not np.array_equal(out.motion.as_array(), other.motion.as_array())
    assert set(out.timings) == {"audio", "motion", "render", "paint", "encode", "first_frame"}
    assert out.timings["paint"] == 0  # the mouth painter is off by default
    assert 0 < out.timings["first_frame"] and all(v >= 0 for v in out.timings.values())


def test_the_audio_drives_the_motion_and_guidance_0_is_the_audio_dropped_twin(pipe):
    a, b = speech(1.0, 0), speech(1.0, 1)
    assert not np.allclose(run(pipe, a).motion.as_array(), run(pipe, b).motion.as_array())
    twin_a, twin_b = run(pipe, a, guidance_scale=0.0), run(pipe, b, guidance_scale=0.0)
    np.testing.assert_array_equal(twin_a.motion.as_array(), twin_b.motion.as_array())


def test_a_still_head_keeps_the_photos_pose_and_the_background(pipe):
    out = run(pipe, speech(1.0, 0), still_head=True, head_amount=1.0)
    assert not out.motion.yaw.any() and not out.motion.tx.any() and (out.motion.scale == 1).all()
    corner = (slice(0, 60), slice(0, 60))  # far from the face
    assert all(np.array_equal(frame[corner], PHOTO[corner]) for frame in out.frames)


def test_a_wide_photo_keeps_its_shape_and_streaming_writes_the_same_video(pipe, tmp_path):
    wide = np.concatenate([PHOTO, PHOTO[:, ::-1][:, :128]], axis=1)  # 512 x 640
    audio = speech(1.0, 0)
    held = pipe(wide, audio, generator=torch.Generator().manual_seed(0), num_inference_steps=3)
    assert held.frames.shape[1:] == (512, 640, 3)
    path = tmp_path / "talk.mp4"
    streamed = pipe(wide, audio, generator=torch.Generator().manual_seed(0), num_inference_steps=3, output_path=path)
    assert streamed.frames is None and streamed.path == path
    np.testing.assert_array_equal(streamed.motion.as_array(), held.motion.as_array())
    clip = read_video(path)
    assert clip.num_frames == len(held.frames) and clip.audio is not None


def test_saved_and_loaded_it_makes_the_same_video(pipe, tmp_path):
    pipe.save_pretrained(tmp_path / "saved")
    loaded = MotionTalkingHeadPipeline.from_pretrained(tmp_path / "saved")
    loaded.set_progress_bar_config(disable=True)
    audio = speech(0.8, 2)
    np.testing.assert_array_equal(run(pipe, audio).frames, run(loaded, audio).frames)


def test_the_callback_sees_each_frame_and_its_motion_and_may_replace_the_frame(pipe):
    seen = []

    def grey(p, i, t, kwargs):
        seen.append((i, tuple(kwargs["motion"].shape)))
        return {"frame": torch.full_like(kwargs["frame"], 128)}

    out = run(pipe, speech(0.5, 0), callback_on_step_end=grey)
    assert [i for i, _ in seen] == list(range(len(out.frames))) and seen[0][1] == (15,)
    assert (out.frames == 128).all()


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(image=None), "image must be a face photo"),
        (dict(audio=None), "audio must be speech"),
        (dict(guidance_scale=-1.0), "guidance_scale must be"),
        (dict(head_amount=float("nan")), "head_amount must be"),
        (dict(blink_rate_per_min="often"), "blink_rate_per_min must be"),
        (dict(num_inference_steps=0), "num_inference_steps must be"),
        (dict(scheduler="euler"), "scheduler must be one of"),
        (dict(fps=0), "fps"),
        (dict(output_type="gif"), "output_type"),
        (dict(callback_on_step_end_tensor_inputs=["latents"]), "callback_on_step_end_tensor_inputs"),
    ],
)
def test_bad_inputs_are_named(pipe, kwargs, message):
    args = dict(image=PHOTO, audio=speech(0.5, 0)) | kwargs
    with pytest.raises(ValueError, match=message):
        pipe(**args)


def test_a_photo_without_a_face_fails_before_any_sampling(pipe, monkeypatch):
    import avdiff.pipelines.talking_head.pipeline_motion_talking_head as module

    def never(*args, **kwargs):
        raise AssertionError("sampled motion for a photo without a face")

    monkeypatch.setattr(module, "iter_motion", never)
    with pytest.raises(NoFaceError):
        pipe(skimage.data.rocket(), speech(0.5, 0))


def test_avdiff_talk_with_a_motion_model_takes_its_controls_and_refuses_the_pixel_models(pipe, tmp_path, capsys):
    from PIL import Image

    from avdiff.audio.io import save_audio
    from avdiff.cli import main

    pipe.save_pretrained(tmp_path / "motion")
    save_audio(tmp_path / "speech.wav", speech(0.8, 0))
    Image.fromarray(PHOTO).save(tmp_path / "face.png")
    common = ["talk", "--model", str(tmp_path / "motion"), "--image", str(tmp_path / "face.png"),
              "--audio", str(tmp_path / "speech.wav")]  # fmt: skip
    assert main([*common, "--out", str(tmp_path / "a.mp4"), "--steps", "2", "--still-head", "--blink-rate", "30"]) == 0
    clip = read_video(tmp_path / "a.mp4")
    assert clip.frames.shape[1:] == (512, 512, 3) and clip.num_frames == FrameClock(25, 16000).num_frames(12800)
    capsys.readouterr()
    assert main([*common, "--out", str(tmp_path / "b.mp4"), "--audio-guidance", "3"]) == 2
    assert "--audio-guidance: not a setting of a motion model" in capsys.readouterr().err
    assert main([*common, "--out", str(tmp_path / "c.mp4"), "--crops"]) == 2
    assert not (tmp_path / "b.mp4").exists() and not (tmp_path / "c.mp4").exists()
    # the flags reach the call as the pipeline's arguments, with its defaults where none is given
    from avdiff.cli import build_parser
    from avdiff.commands.talk import generation_kwargs

    args = build_parser().parse_args([*common, "--out", "x.mp4", "--still-head", "--blink-rate", "30"])
    kwargs = generation_kwargs(args, pipe)
    assert kwargs["still_head"] is True and kwargs["blink_rate_per_min"] == 30 and kwargs["guidance_scale"] == 2.0
    assert "num_inference_steps" not in kwargs and "chunk_frames" not in kwargs  # the pipeline's own default: 10
    assert "paint_mouth" not in kwargs  # the fast path unless asked
    # this model has no mouth painter: --paint-mouth is refused before any work, naming the flag
    assert main([*common, "--out", str(tmp_path / "d.mp4"), "--paint-mouth"]) == 2
    assert "--paint-mouth, but this pipeline has no mouth_painter" in capsys.readouterr().err
    assert main([*common, "--out", str(tmp_path / "e.mp4"), "--mouth-steps", "3"]) == 2
    assert "--mouth-steps 3, but --paint-mouth is not given" in capsys.readouterr().err
    # the pipeline's checks are said in the flags' words, and contradicting flags are refused
    for flags, said in (
        (["--expressiveness", "-1"], "--expressiveness must be"),
        (["--steps", "0"], "--steps must be"),
        (["--still-head", "--head-motion", "2"], "--head-motion: the head keeps the photo's pose"),
    ):
        assert main([*common, "--out", str(tmp_path / "f.mp4"), *flags]) == 2
        assert said in capsys.readouterr().err
    assert not any((tmp_path / name).exists() for name in ("d.mp4", "e.mp4", "f.mp4"))


def test_avdiff_talk_refuses_a_pipeline_of_another_job(tmp_path, capsys):
    from PIL import Image

    from avdiff.audio.io import save_audio
    from avdiff.cli import main
    from avdiff.pipelines import TextToVideoPipeline

    TextToVideoPipeline.from_preset("tiny", seed=0).save_pretrained(tmp_path / "scenes")
    save_audio(tmp_path / "speech.wav", speech(0.5, 0))
    Image.fromarray(PHOTO).save(tmp_path / "face.png")
    argv = ["talk", "--model", str(tmp_path / "scenes"), "--image", str(tmp_path / "face.png"), "--audio",
            str(tmp_path / "speech.wav"), "--out", str(tmp_path / "t.mp4")]  # fmt: skip
    assert main(argv) == 2
    assert "a TextToVideoPipeline, not a talking-head pipeline" in capsys.readouterr().err
    assert not (tmp_path / "t.mp4").exists()


def test_bench_talk_times_each_stage_of_one_call():
    from avdiff.bench.talk import measure_stages, stages_row

    r = measure_stages(1.0, size=256, threads=1, steps=2)
    assert r["frames"] == 25 and r["size"] == 256
    stages = sum(r[k] for k in ("audio", "motion", "render", "paint", "encode"))
    assert 0 < r["first_frame_s"] < r["total_s"] and 0 < stages <= r["total_s"]  # the stages lie inside the call
    row = stages_row(r)
    assert (
        float(row["rtf"]) == pytest.approx(r["total_s"], rel=0.01)
        and row["config"] == "256px 1 thread(s)"
        and r["threads"] == 1
    )
