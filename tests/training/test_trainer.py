"""The shared trainer: exact resumption, atomic checkpoints, seeded batch order."""

import logging
from pathlib import Path

import pytest
import torch
from torch.utils.data import TensorDataset

from avdiff.training import StepBatchSampler, TrainConfig, Trainer


class ToyTask:
    """Regress y = x @ w_true with dropout and noisy targets, so randomness matters at every step."""

    def __init__(self, n: int = 64):
        g = torch.Generator().manual_seed(123)
        self.x = torch.randn(n, 8, generator=g)
        self.y = self.x @ torch.randn(8, 1, generator=g)

    def build_model(self):
        return torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.Dropout(0.2), torch.nn.Linear(16, 1))

    def build_dataset(self):
        return TensorDataset(self.x, self.y)

    def compute_loss(self, model, batch, step):
        x, y = batch
        noise = 0.1 * torch.randn_like(y)
        loss = torch.nn.functional.mse_loss(model(x), y + noise)
        return loss, {}

    def save_model(self, model, path: Path):
        torch.save(model.state_dict(), path / "model.pt")


def config(tmp_path, **kw) -> TrainConfig:
    base = dict(output_dir=str(tmp_path), max_steps=20, batch_size=8, lr=0.01, checkpoint_every=5, log_every=5, seed=3)
    return TrainConfig(**{**base, **kw})


def final_weights(run: Path) -> dict:
    return torch.load(run / "final" / "model.pt")


def test_kill_and_resume_equals_an_uninterrupted_run(tmp_path):
    Trainer(ToyTask(), config(tmp_path / "straight"), progress_bar=False).train()
    killed = Trainer(ToyTask(), config(tmp_path / "killed"), progress_bar=False)
    partial = killed.train(stop_after=7)  # "killed" after step 7: the last checkpoint is step 5
    assert partial.steps == 7 and not (tmp_path / "killed" / "final").exists()
    assert [p.name for p in killed.checkpoints()] == ["step_5", "step_7"]
    resumed = Trainer(ToyTask(), config(tmp_path / "killed"), progress_bar=False).train(resume=True)
    assert resumed.steps == 20
    a, b = final_weights(tmp_path / "straight"), final_weights(tmp_path / "killed")
    for key in a:
        assert torch.equal(a[key], b[key]), key


def test_resume_from_an_older_checkpoint_also_matches(tmp_path):
    Trainer(ToyTask(), config(tmp_path / "straight"), progress_bar=False).train()
    t = Trainer(ToyTask(), config(tmp_path / "run", keep_checkpoints=5), progress_bar=False)
    t.train(stop_after=12)
    # drop the newest checkpoints, as if the process died while writing them
    for ckpt in t.checkpoints()[1:]:
        (ckpt / "DONE").unlink()
    assert [p.name for p in t.checkpoints()] == ["step_5"]
    Trainer(ToyTask(), config(tmp_path / "run"), progress_bar=False).train(resume=True)
    a, b = final_weights(tmp_path / "straight"), final_weights(tmp_path / "run")
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_different_seeds_give_different_runs(tmp_path):
    Trainer(ToyTask(), config(tmp_path / "a"), progress_bar=False).train()
    Trainer(ToyTask(), config(tmp_path / "b", seed=4), progress_bar=False).train()
    a, b = final_weights(tmp_path / "a"), final_weights(tmp_path / "b")
    assert not all(torch.equal(a[k], b[k]) for k in a)


def test_training_lowers_the_loss_and_logs(tmp_path):
    import json

    Trainer(ToyTask(), config(tmp_path, max_steps=60, log_every=10), progress_bar=False).train()
    losses = [json.loads(line)["loss"] for line in (tmp_path / "logs.jsonl").read_text().splitlines()]
    assert len(losses) == 6 and losses[-1] < 0.5 * losses[0]
    assert json.loads((tmp_path / "config.json").read_text())["trainer"]["max_steps"] == 60


class EvaluatedToyTask(ToyTask):
    """ToyTask with an evaluation that records the steps it ran at."""

    def __init__(self):
        super().__init__()
        self.evaluated_at = []

    def evaluate(self, model, step):
        self.evaluated_at.append(step)
        return {"step_seen": float(step), "w": float(model[0].weight.detach().sum())}


def test_the_result_holds_the_evaluation_of_the_last_step_only(tmp_path):
    task = EvaluatedToyTask()
    result = Trainer(task, config(tmp_path / "a", max_steps=20, eval_every=10), progress_bar=False).train()
    assert task.evaluated_at == [10, 20] and result.is_main_process
    assert result.eval_metrics["step_seen"] == 20.0
    saved = final_weights(tmp_path / "a")["0.weight"]
    assert result.eval_metrics["w"] == pytest.approx(float(saved.sum()))  # the final weights were scored
    # the last step not evaluated (eval_every does not divide max_steps, or the run stopped early): nothing
    task = EvaluatedToyTask()
    result = Trainer(task, config(tmp_path / "b", max_steps=20, eval_every=15), progress_bar=False).train()
    assert task.evaluated_at == [15] and result.eval_metrics == {}
    stopped = Trainer(EvaluatedToyTask(), config(tmp_path / "c", max_steps=20, eval_every=10), progress_bar=False)
    assert stopped.train(stop_after=10).eval_metrics == {}
    assert Trainer(ToyTask(), config(tmp_path / "d", max_steps=10), progress_bar=False).train().eval_metrics == {}


def test_ema_weights_are_what_is_saved(tmp_path):
    Trainer(ToyTask(), config(tmp_path / "plain", max_steps=10), progress_bar=False).train()
    Trainer(ToyTask(), config(tmp_path / "ema", max_steps=10, ema_decay=0.9), progress_bar=False).train()
    a, b = final_weights(tmp_path / "plain"), final_weights(tmp_path / "ema")
    assert not torch.equal(a["0.weight"], b["0.weight"])


def test_step_batch_sampler_is_a_function_of_the_step():
    full = list(StepBatchSampler(50, 8, 20, seed=1))
    tail = list(StepBatchSampler(50, 8, 20, seed=1, start_step=13))
    assert full[13:] == tail and len(full) == 20
    epoch = [i for batch in full[:6] for i in batch]  # 6 steps per epoch (50 // 8)
    assert len(set(epoch)) == 48  # no repeats inside an epoch
    assert full[:6] != full[6:12]  # a new order each epoch
    with pytest.raises(ValueError, match="fewer than batch_size"):
        StepBatchSampler(4, 8, 10, seed=0)


def test_grouped_batches_never_mix_groups_and_resume_exactly(caplog):
    groups = [48] * 21 + [64] * 10 + [80] * 3  # e.g. crop sizes; 80 has fewer items than a batch
    with caplog.at_level(logging.WARNING, logger="avdiff.training.trainer"):
        full = list(StepBatchSampler(34, 4, 24, seed=2, groups=groups))
    assert "never trained on: {80: 3}" in caplog.text
    tail = list(StepBatchSampler(34, 4, 24, seed=2, start_step=9, groups=groups))
    assert full[9:] == tail
    assert all(len(b) == 4 and len({groups[i] for i in b}) == 1 for b in full)
    epoch = [i for batch in full[:7] for i in batch]  # 5 + 2 whole batches per epoch
    assert len(set(epoch)) == 28 and not {i for i in epoch if groups[i] == 80}
    assert {groups[b[0]] for b in full[:7]} == {48, 64}  # both groups in every epoch, in a seeded order
    assert full[:7] != full[7:14]
    assert list(StepBatchSampler(34, 4, 24, seed=2)) != full  # without groups: batches across sizes, as before
    with pytest.raises(ValueError, match="no group has"):
        StepBatchSampler(6, 4, 10, seed=0, groups=[1, 1, 1, 2, 2, 2])
    with pytest.raises(ValueError, match="keys for"):
        StepBatchSampler(6, 4, 10, seed=0, groups=[1, 1])


@pytest.mark.parametrize(
    "bad", [dict(max_steps=0), dict(batch_size=0), dict(mixed_precision="fp8"), dict(ema_decay=1.5)]
)
def test_bad_settings_are_refused(bad):
    with pytest.raises(ValueError):
        TrainConfig.from_dict(bad)
    with pytest.raises(ValueError, match="unknown trainer settings"):
        TrainConfig.from_dict({"max_stepz": 3})


def test_non_finite_loss_stops_with_a_clear_error(tmp_path):
    class Exploding(ToyTask):
        def compute_loss(self, model, batch, step):
            return torch.tensor(float("nan"), requires_grad=True), {}

    with pytest.raises(FloatingPointError, match="step 0"):
        Trainer(Exploding(), config(tmp_path), progress_bar=False).train()


def test_resume_works_for_models_holding_a_log_mel(tmp_path):
    """torch's periodic Hann window is a view into a longer storage; safetensors would refuse to load it on resume."""
    from avdiff.audio.features import LogMel

    class Net(torch.nn.Module):
        def __init__(self, body):
            super().__init__()
            self.body, self.mel = body, LogMel(16000)  # the log-mel holds the window buffer

        def forward(self, x):
            return self.body(x)

    class WithMel(ToyTask):
        def build_model(self):
            return Net(super().build_model())

    Trainer(WithMel(), config(tmp_path / "straight"), progress_bar=False).train()
    Trainer(WithMel(), config(tmp_path / "killed"), progress_bar=False).train(stop_after=7)
    Trainer(WithMel(), config(tmp_path / "killed"), progress_bar=False).train(resume=True)
    a, b = final_weights(tmp_path / "straight"), final_weights(tmp_path / "killed")
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_a_config_can_start_from_a_base_and_override_it(tmp_path):
    import yaml

    from avdiff.training.config import load_train_config

    (tmp_path / "base.yaml").write_text(
        yaml.safe_dump(
            {"trainer": {"output_dir": "runs/a", "max_steps": 30, "lr": 0.01}, "task": {"mouth_weight": 2.0, "x": 1}}
        )
    )
    (tmp_path / "control.yaml").write_text(
        yaml.safe_dump({"base": "base.yaml", "trainer": {"output_dir": "runs/b"}, "task": {"x": 5}})
    )
    trainer, task = load_train_config(tmp_path / "control.yaml", {"max_steps": 7, "lr": None})
    assert (trainer.output_dir, trainer.max_steps, trainer.lr) == ("runs/b", 7, 0.01)
    assert task == {"mouth_weight": 2.0, "x": 5}
    # the shipped no-audio control differs from the audio recipe only where it says so
    configs = Path(__file__).resolve().parents[2] / "configs" / "train"
    _, audio = load_train_config(configs / "talking_head_tiny.yaml")
    control_trainer, control = load_train_config(configs / "talking_head_tiny_noaudio.yaml")
    assert control == {**audio, "audio_dropout_always": True} and not audio.get("audio_dropout_always")
    assert control_trainer.output_dir != load_train_config(configs / "talking_head_tiny.yaml")[0].output_dir


@pytest.mark.parametrize(
    "files, message",
    [
        ({"a.yaml": {"base": "a.yaml"}}, "loops back"),
        ({"a.yaml": {"base": "missing.yaml"}}, "no such config file"),
        ({"a.yaml": {"trainer": {}, "model": {}}}, "top-level sections"),
        ({"a.yaml": {"task": [1, 2]}}, "must be a mapping"),
    ],
)
def test_bad_config_files_are_refused(tmp_path, files, message):
    import yaml

    from avdiff.training.config import load_train_config

    for name, content in files.items():
        (tmp_path / name).write_text(yaml.safe_dump(content))
    with pytest.raises((ValueError, FileNotFoundError), match=message):
        load_train_config(tmp_path / "a.yaml")


def test_step_seeds_differ_per_rank_and_keep_rank_0s_formula():
    from avdiff.training import step_seed

    assert step_seed(3, 7) == step_seed(3, 7, 0) == 3 * 1_000_003 + 8  # single-process runs are unchanged
    seeds = {(s, r): step_seed(3, s, r) for s in range(50) for r in range(4)}
    assert len(set(seeds.values())) == 200  # no two (step, rank) pairs share a stream
    assert all(0 <= x < 2**32 for (s, r), x in seeds.items() if r > 0)  # what torch's CPU generator keeps
    assert step_seed(3, 7, 1) == step_seed(3, 7, 1) != step_seed(4, 7, 1)  # a function of (seed, step, rank)
    with pytest.raises(ValueError, match="rank"):
        step_seed(0, 0, -1)


def _torchrun(out: Path, *args: str):
    import os
    import subprocess
    import sys

    import avdiff

    env = {
        **os.environ,
        "OMP_NUM_THREADS": "1",
        "PYTHONPATH": os.pathsep.join([str(Path(avdiff.__file__).parents[1]), os.environ.get("PYTHONPATH", "")]),
    }
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node",
        "2",
        str(Path(__file__).resolve().parents[1] / "ddp_toy.py"),
        str(out),
        *args,
    ]
    return subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _wait(proc) -> None:
    out, _ = proc.communicate(timeout=300)
    assert proc.returncode == 0, out[-3000:]


@pytest.mark.slow
def test_two_ddp_ranks_draw_their_own_noise_and_a_killed_run_resumes_exactly(tmp_path):
    """2 CPU processes (gloo, torchrun): each rank has its own noise at every step, and a DDP run stopped after 5 of
    8 steps and resumed from its checkpoint ends with the same weights and optimizer state, bit for bit."""
    import json

    from safetensors.torch import load_file

    straight, killed = tmp_path / "straight", tmp_path / "killed"
    runs = [_torchrun(straight), _torchrun(killed, "--stop-after", "5")]  # side by side
    for proc in runs:
        _wait(proc)
    assert not (killed / "final").exists() and (killed / "checkpoints" / "step_5" / "DONE").is_file()
    _wait(_torchrun(killed, "--resume"))

    draws = {r: json.loads((straight / f"draws_first_rank{r}.json").read_text()) for r in (0, 1)}
    assert sorted(draws[0], key=int) == [str(s) for s in range(8)]
    for step in draws[0]:
        assert len(draws[0][step]) == 4 and draws[0][step] != draws[1][step], step  # 4 samples a rank, own noise
    for r in (0, 1):  # the resumed run drew the straight run's noise at steps 5..7
        resumed = json.loads((killed / f"draws_resumed_rank{r}.json").read_text())
        assert resumed == {s: draws[r][s] for s in ("5", "6", "7")}

    a, b = final_weights(straight), final_weights(killed)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    sa, sb = straight / "checkpoints" / "step_8", killed / "checkpoints" / "step_8"
    ma, mb = load_file(sa / "model.safetensors"), load_file(sb / "model.safetensors")
    assert ma.keys() == mb.keys() and all(torch.equal(ma[k], mb[k]) for k in ma)
    oa = torch.load(sa / "optimizer.bin", weights_only=True)["state"]
    ob = torch.load(sb / "optimizer.bin", weights_only=True)["state"]
    assert oa.keys() == ob.keys() and len(oa) == 4
    for k in oa:
        for name in ("step", "exp_avg", "exp_avg_sq"):
            assert torch.equal(oa[k][name], ob[k][name]), (k, name)
