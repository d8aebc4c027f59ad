"""End to end on tiny synthetic data: train -> checkpoint -> resume -> eval, and exact resume."""
import json

import torch

import eval as eval_script
import train as train_script


def train_args(root, out, iters, extra=()):
    return ["--dataset", "synthetic", "--preset", "tiny", "--data_root", str(root), "--flownet", "classical",
            "--weights_dir", str(out / "w"), "--log_dir", str(out / "runs"), "--iters", str(iters),
            "--save_interval", "3", "--val_interval", "100", *extra]


def weights(path):
    return torch.load(path, map_location="cpu", weights_only=True)


def test_train_resume_is_exact(synthetic_root, tmp_path):
    straight, split = tmp_path / "straight", tmp_path / "split"
    assert train_script.main(train_args(synthetic_root, straight, 6)) == 0
    assert train_script.main(train_args(synthetic_root, split, 3)) == 0
    assert train_script.main(train_args(synthetic_root, split, 6, ["--resume", str(split / "w" / "synthetic_latest.pth")])) == 0
    a, b = weights(straight / "w" / "synthetic_latest.pth"), weights(split / "w" / "synthetic_latest.pth")
    assert a["step"] == b["step"] == 6
    for name in ("net_g", "net_d"):
        for k in a[name]:
            assert torch.equal(a[name][k], b[name][k]), f"{name}.{k} differs after resume"
    assert a["sched_g"]["last_epoch"] == b["sched_g"]["last_epoch"]
    assert a["optim_g"]["param_groups"][0]["lr"] == b["optim_g"]["param_groups"][0]["lr"]


def test_end_to_end_train_then_eval(synthetic_root, tmp_path, capsys):
    assert train_script.main(train_args(synthetic_root, tmp_path, 4, ["--val_interval", "4"])) == 0
    ckpt = tmp_path / "w" / "synthetic_latest.pth"
    state = weights(ckpt)
    assert state["config"]["dataset"] == "synthetic" and state["step"] == 4
    assert state["flownet"]["name"] != "none"
    assert (tmp_path / "runs" / "synthetic" / "config.json").is_file()
    assert (tmp_path / "w" / "synthetic_best.pth").is_file()
    rc = eval_script.main(["--trained_model", str(ckpt), "--data_root", str(synthetic_root),
                           "--out_dir", str(tmp_path / "results")])
    assert rc == 0
    metrics = json.loads((tmp_path / "results" / "synthetic_synthetic_latest" / "metrics.json").read_text())
    assert 0 <= metrics["micro_auc"] <= 1
    out = capsys.readouterr().out
    assert "micro-AUC" in out
    # A second evaluation never overwrites the first.
    assert eval_script.main(["--trained_model", str(ckpt), "--data_root", str(synthetic_root),
                             "--out_dir", str(tmp_path / "results")]) == 0
    assert (tmp_path / "results" / "synthetic_synthetic_latest_2" / "metrics.json").is_file()
