"""Checkpoints from before the motion loss's units were fixed (docs/method.md): which ones are legacy,
and how their λ_op reads today. Dict-only: no training."""

import pytest
import torch

from config import CLASSICAL_LAMBDA_OP, build_config
from train import parse_args
from training.resume import LEGACY_FLOW_SCALE, checkpoint_config, resume_config, trained_with_legacy_flow_scale


def state(flownet, lambda_op=2.0, flow_choice="auto"):
    cfg = build_config("ped2", overrides={"lambda_op": lambda_op, "flownet": flow_choice})
    out = {"config": cfg.to_dict()}
    if flownet is not ...:
        out["flownet"] = flownet
    return out


@pytest.mark.parametrize(
    "flownet, legacy",
    [
        ({"name": "ClassicalFlow", "checkpoint": None}, True),
        ({"name": "ClassicalFlow", "checkpoint": None, "loss_units": "pixels"}, False),
        ({"name": "ClassicalFlow", "loss_units": "some future unit"}, False),  # never read as the legacy scale
        ({"name": "FlowNet2SDFlow", "checkpoint": "x.pth"}, False),  # its loss was right all along
        ({"name": "none", "checkpoint": None}, False),
        (..., False),  # no flownet entry at all
        ("ClassicalFlow", False),  # not a dict: not ours, not legacy
    ],
)
def test_which_checkpoints_are_legacy(flownet, legacy):
    s = state(flownet)
    assert trained_with_legacy_flow_scale(s) is legacy
    cfg = checkpoint_config(s)
    assert cfg.lambda_op == (CLASSICAL_LAMBDA_OP if legacy else 2.0)
    assert cfg.flownet == ("classical" if legacy else "auto")


def test_resume_keeps_the_loss_and_says_so_once():
    legacy = state({"name": "ClassicalFlow", "checkpoint": None})
    cfg, changes = resume_config(parse_args(["--dataset", "ped2"]), legacy, "old.pth")
    assert (cfg.lambda_op, cfg.flownet) == (CLASSICAL_LAMBDA_OP, "classical")
    assert [c.split(" (")[0] for c in changes] == ["lambda_op: 2.0 -> 0.005", "flownet: auto -> classical"]
    # Resuming the resumed run (now with loss_units) changes nothing further.
    current = {"config": cfg.to_dict(), "flownet": {"name": "ClassicalFlow", "loss_units": "pixels"}}
    assert resume_config(parse_args(["--dataset", "ped2"]), current, "new.pth") == (cfg, [])


def test_resume_with_flags_that_decide_the_flow_term():
    legacy = state({"name": "ClassicalFlow", "checkpoint": None})
    cfg, changes = resume_config(parse_args(["--lambda_op", "0.01"]), legacy, "old.pth")
    assert cfg.lambda_op == 0.01 and any(c.startswith("lambda_op: 0.005 -> 0.01") for c in changes)
    # Another estimator: the weight stays as written (the old code gave FlowNet2-SD its λ_op unscaled).
    cfg, _ = resume_config(parse_args(["--flownet", "flownet2sd"]), legacy, "old.pth")
    assert (cfg.lambda_op, cfg.flownet) == (2.0, "flownet2sd")
    # --flownet auto on resume is the estimator the run trained with: the legacy loss is kept, not made 400× stronger.
    cfg, changes = resume_config(parse_args(["--flownet", "auto"]), legacy, "old.pth")
    assert (cfg.lambda_op, cfg.flownet) == (CLASSICAL_LAMBDA_OP, "classical")
    assert not any(c.startswith("flownet: classical -> auto") for c in changes)
    # λ_op 0: nothing to convert, nothing said about it.
    _, changes = resume_config(parse_args([]), state({"name": "ClassicalFlow"}, lambda_op=0.0), "old.pth")
    assert not any(c.startswith("lambda_op") for c in changes)


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
