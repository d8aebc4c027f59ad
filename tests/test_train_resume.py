"""train.py --resume and --init_from: an exact continuation (weights, optimizer, LR schedule, step, data order),
flags that resume applies or refuses, fine-tuning other data, and checkpoints from before the flow-loss fix.

All in-process on tiny generated Ped2/Avenue-layout datasets (tests/fake_layouts.py) at the tiny preset.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import fake_layouts as fl
import pytest
import torch
from helpers import (
    DEVICES,
    LATEST,
    assert_same_training_state,
    eval_cli,
    own_signal_handlers,
    read_scores,
    read_state,
    tiny_args,
    train_cli,
)


# ----------------------------------------------------------------------------------------------- exact resume
@pytest.fixture(scope="module")
def resume_runs(data_root, tmp_path_factory):
    """In-process: 6 steps straight, and 3 steps + --resume to 6; the LR drops at step 4 (after the resume).

    Returns (straight checkpoint, resumed checkpoint, batches seen straight, batches seen by the two halves),
    each batch as a digest of its uint8 clip.
    """
    import train as train_script

    real_step = train_script.train_step
    seen: list[str] = []

    def recording_step(*args, **kwargs):
        clip = next(a for a in args if torch.is_tensor(a) and a.dtype == torch.uint8)
        seen.append(hashlib.sha1(clip.numpy().tobytes()).hexdigest())
        return real_step(*args, **kwargs)

    out = tmp_path_factory.mktemp("resume")
    extra = ("--save_interval", "3", "--lr_drop_steps", "4")
    patch = pytest.MonkeyPatch()
    patch.setattr(train_script, "train_step", recording_step)
    try:
        with own_signal_handlers():
            assert train_script.main(tiny_args(data_root, out / "straight", 6, *extra)) == 0
            straight_batches, seen[:] = list(seen), []
            assert train_script.main(tiny_args(data_root, out / "split", 3, *extra)) == 0
            assert train_script.main(tiny_args(data_root, out / "split", 6, *extra, "--resume", "latest")) == 0
    finally:
        patch.undo()
    return (
        read_state(out / "straight" / "w" / LATEST),
        read_state(out / "split" / "w" / LATEST),
        straight_batches,
        list(seen),
    )


def test_resume_is_exact_weights_optimizer_lr_and_step(resume_runs):
    straight, resumed, *_ = resume_runs
    assert resumed["step"] == 6
    assert_same_training_state(straight, resumed)
    base_lr = straight["optim_g"]["param_groups"][0]["initial_lr"]
    assert straight["optim_g"]["param_groups"][0]["lr"] == pytest.approx(base_lr * 0.1)  # the drop at 4 applied
    assert resumed["sched_g"]["last_epoch"] == 6


def test_resume_sees_the_same_data_order(resume_runs):
    _, _, straight_batches, split_batches = resume_runs
    assert len(straight_batches) == len(split_batches) == 6
    assert split_batches == straight_batches
    assert len(set(straight_batches)) > 1


def test_a_plain_resume_changes_nothing(data_root, tmp_path, device):
    """Resuming with no flags stays bit-identical to an uninterrupted run (the schedule is not rewritten), on each
    device (CUDA with deterministic kernels: the `device` fixture)."""
    flags = ("--save_interval", "3", "--lr_drop_steps", "2,4", "--device", device.type)
    assert train_cli(tiny_args(data_root, tmp_path / "a", 6, *flags)) == 0
    assert train_cli(tiny_args(data_root, tmp_path / "b", 3, *flags)) == 0
    assert train_cli(tiny_args(data_root, tmp_path / "b", 6, *flags, "--resume", "latest")) == 0
    assert_same_training_state(read_state(tmp_path / "a" / "w" / LATEST), read_state(tmp_path / "b" / "w" / LATEST))


@pytest.mark.parametrize("evaluated_on", DEVICES)
def test_a_checkpoint_trained_on_one_device_evaluates_on_another(data_root, tmp_path, device, evaluated_on):
    """A checkpoint trained on `device` loads and evaluates on `evaluated_on` (CUDA-trained on the CPU and the
    other way round; checkpoint.load_checkpoint maps the stored tensors to the CPU): per-frame PSNR within 0.01 dB
    of evaluating it on the CPU, the same frames scored (CUDA evaluation keeps PyTorch's TF32 default here)."""
    assert train_cli(tiny_args(data_root, tmp_path, 2, "--device", device.type)) == 0
    ckpt = tmp_path / "w" / LATEST
    rows = {}
    for where in dict.fromkeys(("cpu", evaluated_on)):  # the CPU reference, then the device under test
        assert eval_cli(ckpt, data_root, tmp_path / where, "--device", where, "--dataset", "ped2") == 0
        (folder,) = (tmp_path / where).iterdir()
        rows[where] = read_scores(folder)
    reference, tested = rows["cpu"], rows[evaluated_on]
    assert [(r["video"], r["frame"]) for r in tested] == [(r["video"], r["frame"]) for r in reference]
    assert len(reference) > 0
    assert max(abs(float(a["psnr"]) - float(b["psnr"])) for a, b in zip(reference, tested)) < 0.01


# ----------------------------------------------------------------------------------------------- flags on resume
def test_resume_applies_new_learning_rates_schedule_and_betas(data_root, tmp_path, capsys):
    """--resume latest --lr_g 1e-5 --lr_drop_steps 5 --adam_betas 0.5,0.9: the optimizer really uses them (the LR
    is 1e-5, then ×0.1 after step 5), the start-up printout lists each change, the saved config is what ran."""
    assert train_cli(tiny_args(data_root, tmp_path, 3, "--save_interval", "3")) == 0
    capsys.readouterr()
    assert (
        train_cli(
            tiny_args(
                data_root,
                tmp_path,
                7,
                "--resume",
                "latest",
                "--lr_g",
                "1e-5",
                "--lr_drop_steps",
                "5",
                "--adam_betas",
                "0.5,0.9",
            )
        )
        == 0
    )
    out = capsys.readouterr().out
    for change in (
        "resume: lr_g: 0.0001 -> 1e-05 (applied)",
        "resume: lr_drop_steps: 7000 -> 5 (applied)",
        "resume: adam_betas: 0.9,0.999 -> 0.5,0.9 (applied)",
    ):
        assert change in out, out
    state = read_state(tmp_path / "w" / LATEST)
    group = state["optim_g"]["param_groups"][0]
    assert group["lr"] == pytest.approx(1e-6) and group["initial_lr"] == 1e-5 and tuple(group["betas"]) == (0.5, 0.9)
    assert state["optim_d"]["param_groups"][0]["initial_lr"] == pytest.approx(1e-5)  # --lr_d unchanged
    assert state["config"]["lr_g"] == 1e-5 and state["config"]["lr_drop_steps"] == [5]


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> tuple[Path, Path]:
    """(data root with ped2 and avenue, a 2-step tiny ped2 run's folder)."""
    root = tmp_path_factory.mktemp("data")
    fl.write_ped2_layout(root, n_test=2, n_frames=8)
    fl.write_avenue_layout(root, n_test=2, n_frames=8)
    out = tmp_path_factory.mktemp("run")
    assert train_cli(tiny_args(root, out, 2, val_interval=2)) == 0
    return root, out


def test_resume_refuses_flags_that_change_data_or_architecture(trained, tmp_path, capsys):
    root, run = trained
    ckpt = run / "w" / "ped2_latest.pth"
    before = ckpt.read_bytes()
    argv = tiny_args(
        root, run, 2, "--resume", str(ckpt), "--height", "64", "--g_widths", "8,16", dataset="avenue", val_interval=2
    )
    assert train_cli(argv) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and f"--resume {ckpt}" in err
    for part in (
        "--dataset avenue (the checkpoint's: ped2)",
        "--height 64 (the checkpoint's: 32)",
        "--g_widths 8,16 (the checkpoint's: 8,16,32)",
        "--init_from",
    ):
        assert part in err, part
    assert ckpt.read_bytes() == before and not (run / "w" / "avenue_latest.pth").exists()


# ----------------------------------------------------------------------------------------------- --init_from
def test_init_from_fine_tunes_on_other_data(trained, tmp_path, capsys):
    """--init_from: the weights of a ped2 run, a NEW run on avenue (fresh optimizers, step 0 -> iters)."""
    root, run = trained
    source = run / "w" / "ped2_latest.pth"
    assert train_cli(tiny_args(root, tmp_path, 3, "--init_from", str(source), dataset="avenue", val_interval=2)) == 0
    assert f"from the weights of {source} (new run, step 0)" in capsys.readouterr().out
    state = torch.load(tmp_path / "w" / "avenue_latest.pth", weights_only=True)
    assert state["step"] == 3 and state["init_from"] == str(source) and state["config"]["dataset"] == "avenue"
    assert (
        train_cli(
            tiny_args(
                root, tmp_path / "b", 2, "--init_from", str(source), "--height", "64", dataset="avenue", val_interval=2
            )
        )
        == 1
    )
    assert "--height 64 (the weights': 32)" in capsys.readouterr().err


def test_weights_from_before_the_flow_loss_fix(trained, tmp_path, capsys):
    """Format-1 classical-flow checkpoints (no format_version, no flownet.loss_units) trained their motion loss
    scaled by 1/400: --resume continues with the same loss (λ_op 2 -> 0.005) and --init_from starts from it, both
    saying so once; current checkpoints get neither."""
    from checkpoint import save_checkpoint

    root, run = trained
    state = torch.load(run / "w" / "ped2_latest.pth", weights_only=True)
    assert state["flownet"]["loss_units"] == "pixels" and state["config"]["lambda_op"] == 2.0
    state["flownet"]["name"] = "ClassicalFlow"
    save_checkpoint(tmp_path / "current.pth", state)
    del state["flownet"]["loss_units"], state["format_version"]
    save_checkpoint(tmp_path / "old.pth", state)
    said = "(an older checkpoint format) read in today's terms: lambda_op: 2 -> 0.005"
    for name, legacy in (("old", True), ("current", False)):
        source = tmp_path / f"{name}.pth"
        assert train_cli(tiny_args(root, tmp_path / name, 2, "--init_from", str(source), val_interval=2)) == 0
        assert (said in capsys.readouterr().out) == legacy, name  # --init_from
        assert (
            train_cli(
                tiny_args(root, tmp_path / name, 3, "--resume", str(source), "--flownet", "classical", val_interval=2)
            )
            == 0
        )
        resumed = torch.load(tmp_path / name / "w" / "ped2_latest.pth", weights_only=True)
        assert resumed["config"]["lambda_op"] == (0.005 if legacy else 2.0), name
        assert resumed["format_version"] == 2 and "upgrade_notes" not in resumed
        assert (said in capsys.readouterr().out) == legacy
