"""Checkpoint format versions: a format-1 file (no format_version) is read in today's terms once, when it is loaded
(the classical-flow loss scaled by 1/400 -> λ_op in pixels, flownet auto -> the recorded estimator, fps, the
selection flag, cache_flow), a current one is left alone, a newer one is refused in one line."""

import pytest
import torch

from checkpoint import FORMAT_VERSION, NOTES_KEY, load_checkpoint, save_checkpoint
from checkpoint.upgrade import LEGACY_FLOW_SCALE, upgrade
from config import CLASSICAL_LAMBDA_OP, Config, build_config
from errors import FFPError
from train import parse_args
from training.resume import resume_config


def state(flownet=..., lambda_op=2.0, flow_choice="auto", dataset="ped2", **extra):
    cfg = build_config(dataset, overrides={"lambda_op": lambda_op, "flownet": flow_choice}).to_dict()
    del cfg["cache_flow"]  # format 1 had no such field
    out = {"config": cfg, **extra}
    if flownet is not ...:
        out["flownet"] = flownet
    return out


@pytest.mark.parametrize(
    "flownet, legacy, resolved",
    [
        ({"name": "ClassicalFlow", "checkpoint": None}, True, "classical"),
        ({"name": "ClassicalFlow", "checkpoint": None, "loss_units": "pixels"}, False, "classical"),
        ({"name": "ClassicalFlow", "loss_units": "some future unit"}, False, "classical"),  # never the legacy scale
        ({"name": "FlowNet2SDFlow", "checkpoint": "x.pth"}, False, "flownet2sd"),  # its loss was right all along
        ({"name": "IFNetFlow"}, False, "rife"),
        ({"name": "none", "checkpoint": None}, False, "none"),
        (..., False, "auto"),  # no flownet entry at all: resolved on this machine when training
        ("ClassicalFlow", False, "auto"),  # not a dict: not ours, not legacy
    ],
)
def test_flow_units_and_name(flownet, legacy, resolved, tmp_path):
    cfg = Config.from_dict(upgrade(state(flownet), tmp_path / "x_latest.pth")["config"])
    assert cfg.lambda_op == (CLASSICAL_LAMBDA_OP if legacy else 2.0)
    assert cfg.flownet == resolved


def test_the_other_format_1_fields(tmp_path):
    old = upgrade(state({"name": "ClassicalFlow"}), tmp_path / "ped2_best.pth")
    assert old["format_version"] == FORMAT_VERSION and old["flownet"]["loss_units"] == "pixels"
    assert old["fps"] == 10.0 and "documented" in old["fps_origin"]
    assert old["selected_with_test_labels"] is True and old["config"]["cache_flow"] == "off"
    assert [n.split(":")[0] for n in old[NOTES_KEY]] == ["lambda_op", "fps", "selected_with_test_labels"]
    own = upgrade(state(dataset="mycam", fps=None), tmp_path / "mycam_latest.pth")
    assert own["fps"] is None and "fps_origin" not in own  # an own dataset's rate is not known
    assert own["selected_with_test_labels"] is False


def test_a_current_file_is_left_alone_and_a_newer_one_refused(tmp_path):
    current = state({"name": "ClassicalFlow"}, format_version=FORMAT_VERSION)
    assert upgrade(current, tmp_path / "x_best.pth") == state({"name": "ClassicalFlow"}, format_version=FORMAT_VERSION)
    with pytest.raises(FFPError, match=r"format version 3, written by a newer version .* reads up to 2"):
        upgrade(state(format_version=FORMAT_VERSION + 1), tmp_path / "x.pth")
    with pytest.raises(FFPError, match="format_version 'two' is not a positive integer"):
        upgrade(state(format_version="two"), tmp_path / "x.pth")


def test_loading_upgrades_once_and_saving_drops_the_notes(tmp_path):
    path = tmp_path / "ped2_latest.pth"
    save_checkpoint(path, {"net_g": {"w": torch.zeros(1)}, "step": 1, **state({"name": "ClassicalFlow"})})
    loaded = load_checkpoint(path)
    assert loaded["config"]["lambda_op"] == CLASSICAL_LAMBDA_OP and loaded[NOTES_KEY]
    save_checkpoint(tmp_path / "again.pth", loaded)
    again = load_checkpoint(tmp_path / "again.pth")
    assert NOTES_KEY not in again and again["config"]["lambda_op"] == CLASSICAL_LAMBDA_OP  # not converted twice


def test_resume_keeps_the_converted_loss_and_applies_flags(tmp_path):
    legacy = upgrade(state({"name": "ClassicalFlow", "checkpoint": None}), tmp_path / "old.pth")
    cfg, changes = resume_config(parse_args(["--dataset", "ped2"]), legacy, "old.pth")
    assert (cfg.lambda_op, cfg.flownet, cfg.cache_flow) == (CLASSICAL_LAMBDA_OP, "classical", "off")
    assert not any(c.startswith(("lambda_op", "flownet")) for c in changes)
    cfg, changes = resume_config(parse_args(["--lambda_op", "0.01"]), legacy, "old.pth")
    assert cfg.lambda_op == 0.01 and any(c.startswith("lambda_op: 0.005 -> 0.01") for c in changes)
    # --flownet auto on resume is the estimator the run trained with: the converted loss is kept.
    cfg, changes = resume_config(parse_args(["--flownet", "auto"]), legacy, "old.pth")
    assert (cfg.lambda_op, cfg.flownet) == (CLASSICAL_LAMBDA_OP, "classical")


def test_legacy_scale_and_the_new_weight_train_bit_for_bit():
    """2 · (x · 1/400) and 0.005 · x are the same float32 numbers (doubling is exact): a resumed legacy run and
    --preset cpu today train identically; also through backward."""
    x = torch.rand(10_000, dtype=torch.float32, requires_grad=True) * 3
    old = 2.0 * (x * LEGACY_FLOW_SCALE)
    new = CLASSICAL_LAMBDA_OP * x
    assert torch.equal(old, new)
    (g_old,) = torch.autograd.grad(old.sum(), x, retain_graph=True)
    (g_new,) = torch.autograd.grad(new.sum(), x)
    assert torch.equal(g_old, g_new)
