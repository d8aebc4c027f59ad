"""Tests of the flow estimators: FlowNet2-SD layout and loading, classical-flow accuracy, estimator choice."""

from __future__ import annotations

import copy
import os
import pickle
import shutil
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]

from errors import FFPError  # noqa: E402
from flownet import (  # noqa: E402
    DEFAULT_FLOWNET2SD_PATH,
    FLOW_CHOICES,
    ClassicalFlow,
    FlowNet2SD,
    build_flow_estimator,
    load_flownet2sd,
)
from flownet.estimator import FlowNet2SDFlow, freeze  # noqa: E402

SPEC = Path(__file__).resolve().parents[2] / "shared" / "spec" / "flownet2sd_state_dict.txt"
PED2 = Path(__file__).resolve().parents[2] / "shared" / "data" / "ped2" / "training" / "frames" / "01"


# ----------------------------------------------------------------------------------------------- FlowNet2-SD


def _parse_spec(path: Path) -> dict[str, tuple[int, ...]]:
    """{key: shape} from the 'key AxBxC' lines of the spec file ('#' lines are comments)."""
    lines = [line.split() for line in path.read_text().splitlines() if line.strip() and not line.startswith("#")]
    return {key: tuple(int(d) for d in shape.split("x")) for key, shape in lines}


def test_state_dict_matches_nvidia_layout():
    if not SPEC.is_file():
        pytest.skip(f"spec file {SPEC} absent (the shared folder is only on the project machines)")
    expected = _parse_spec(SPEC)
    got = {k: tuple(v.shape) for k, v in FlowNet2SD().state_dict().items()}
    assert list(got) == list(expected)  # same keys, same order as NVIDIA's checkpoints
    for key, shape in expected.items():
        assert got[key] == shape, key
    assert len(got) == 60
    assert sum(int(np.prod(s)) for s in got.values()) == 45_371_666


@pytest.fixture(scope="module")
def random_net() -> FlowNet2SD:
    """One randomly initialised, frozen FlowNet2SD shared by the tests (building 45 M parameters is slow;
    frozen as in training, so backward passes skip the 45 M weight gradients)."""
    torch.manual_seed(1)
    return freeze(FlowNet2SD(), "cpu")


def test_flownet2sd_forward_and_mean_invariance(random_net):
    """Output is B×2×H×W; adding a per-channel constant to both frames changes nothing (mean subtraction)."""
    net = random_net
    frames = torch.rand(1, 3, 2, 64, 128) * 200
    offset = torch.tensor([10.0, -5.0, 20.0]).view(1, 3, 1, 1, 1)
    with torch.no_grad():
        flow = net(frames)
        assert flow.shape == (1, 2, 64, 128)
        assert torch.allclose(net(frames + offset), flow, atol=1e-5)
    with pytest.raises(ValueError):
        net(torch.rand(1, 3, 2, 64, 96))


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory, random_net):
    """A random FlowNet2SD and its weights saved in the accepted layouts."""
    net = random_net
    state = net.state_dict()
    folder = tmp_path_factory.mktemp("ckpt")
    files = {
        "official": folder / "FlowNet2-SD_checkpoint.pth.tar",
        "renamed": folder / "FlowNet2-SD.pth",
        "bare": folder / "bare.pth",
        "module": folder / "module.pth",
        "legacy": folder / "legacy.pth.tar",
    }
    official = {"epoch": 12, "state_dict": state, "best_EPE": 1.23}
    torch.save(official, files["official"])
    # NVIDIA's 2018 file predates the zip format: the loader must read the legacy format too.
    torch.save(official, files["legacy"], _use_new_zipfile_serialization=False)
    shutil.copy(files["official"], files["renamed"])
    torch.save(state, files["bare"])
    torch.save({f"module.{k}": v for k, v in state.items()}, files["module"])
    return net, files


@pytest.mark.parametrize("layout", ["official", "renamed", "bare", "module", "legacy"])
def test_load_roundtrip(checkpoints, layout):
    net, files = checkpoints
    loaded = load_flownet2sd(files[layout], "cpu")
    for key, value in net.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], value), key


def test_build_flownet2sd_frozen_and_auto(checkpoints):
    _, files = checkpoints
    est, name = build_flow_estimator("flownet2sd", files["renamed"], "cpu")
    assert name == "flownet2sd" and isinstance(est, FlowNet2SDFlow)
    assert not est.training and all(not p.requires_grad for p in est.parameters())
    # 'auto' finds NVIDIA's release name beside a missing default-named path.
    missing = files["official"].parent / "FlowNet2-SD_missing.pth"
    assert build_flow_estimator("auto", missing, "cpu")[1] == "flownet2sd"


@pytest.mark.parametrize("size", [(64, 64), (70, 100)])
def test_wrapper_shape_and_gradient(size, random_net, device):
    torch.manual_seed(2)
    est = FlowNet2SDFlow(random_net if device.type == "cpu" else freeze(copy.deepcopy(random_net), device))
    a = (torch.rand(2, 3, *size, device=device) * 2 - 1).requires_grad_(True)
    b = (torch.rand(2, 3, *size, device=device) * 2 - 1).requires_grad_(True)
    flow = est(a, b)
    assert flow.shape == (2, 2, *size) and flow.device.type == device.type
    flow.square().mean().backward()
    for frame in (a, b):
        assert frame.grad is not None and torch.isfinite(frame.grad).all() and frame.grad.abs().sum() > 0


class _ConstantFlowNet(torch.nn.Module):
    """Stand-in for FlowNet2SD: records its input and returns flow (1, 1) px at the network resolution."""

    def forward(self, inputs):
        self.inputs = inputs
        return inputs.new_ones((inputs.shape[0], 2) + inputs.shape[-2:])


def test_wrapper_range_resize_and_vector_rescale():
    stub = _ConstantFlowNet()
    est = FlowNet2SDFlow(stub)
    a, b = -torch.ones(1, 3, 100, 150), torch.ones(1, 3, 100, 150)
    flow = est(a, b)
    assert stub.inputs.shape == (1, 3, 2, 128, 128)  # nearest multiples of 64
    assert torch.allclose(stub.inputs[:, :, 0], torch.zeros(()))  # -1 -> 0
    assert torch.allclose(stub.inputs[:, :, 1], torch.full((), 255.0))  # +1 -> 255
    assert torch.allclose(flow[:, 0], torch.full((), 150 / 128))  # x scaled by W / W'
    assert torch.allclose(flow[:, 1], torch.full((), 100 / 128))  # y scaled by H / H'


def test_garbage_truncated_and_wrong_shape_files(checkpoints, tmp_path):
    net, files = checkpoints
    garbage = tmp_path / "garbage.pth"
    garbage.write_bytes(os.urandom(4096))
    truncated = tmp_path / "truncated.pth"
    truncated.write_bytes(files["bare"].read_bytes()[: 1 << 20])
    for bad in (garbage, truncated):
        with pytest.raises(FFPError, match=bad.name):
            load_flownet2sd(bad)
    state = dict(net.state_dict())
    state["predict_flow2.weight"] = torch.zeros(2, 32, 3, 3)
    del state["conv0.0.bias"]
    wrong = tmp_path / "wrong.pth"
    torch.save({"state_dict": state}, wrong)
    with pytest.raises(FFPError, match="wrong.pth") as info:
        load_flownet2sd(wrong)
    assert "predict_flow2.weight" in str(info.value) and "conv0.0.bias" in str(info.value)
    not_a_dict = tmp_path / "list.pth"
    torch.save([1, 2, 3], not_a_dict)
    with pytest.raises(FFPError, match="list.pth"):
        load_flownet2sd(not_a_dict)


def test_missing_file_message(tmp_path):
    missing = tmp_path / "nope.pth"
    with pytest.raises(FFPError) as info:
        load_flownet2sd(missing)
    with pytest.raises(FFPError) as info_build:
        build_flow_estimator("flownet2sd", missing, "cpu")
    for message in (str(info.value), str(info_build.value)):
        assert "\n" not in message and str(missing) in message
        for hint in ("flownet/pretrained/FlowNet2-SD.pth", "--flownet_ckpt", "--flownet classical", "--flownet none"):
            assert hint in message


class _Exploit:
    """Unpickling this runs a shell command; a weights-only loader must refuse it."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch '{self.marker}'",)


def test_exploit_payload_is_live(tmp_path):
    """Control for the test below: an unsafe unpickle of the payload really does run the command."""
    marker = tmp_path / "control"
    pickle.loads(pickle.dumps(_Exploit(marker)))
    assert marker.exists()


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")  # torch's note on a plain (non-torch) pickle
@pytest.mark.parametrize("writer", ["torch", "pickle"])
def test_malicious_pickle_is_refused(tmp_path, writer):
    marker = tmp_path / "pwned"
    evil = tmp_path / "evil.pth"
    payload = {"state_dict": _Exploit(marker)}
    if writer == "torch":
        torch.save(payload, evil)
    else:
        evil.write_bytes(pickle.dumps(payload))
    with pytest.raises(FFPError, match="evil.pth"):
        load_flownet2sd(evil)
    assert not marker.exists()


# ------------------------------------------------------------------------------------------ classical flow


def _texture_pair(size: int, flow_fn, seed: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(frame_a, frame_b, true flow a->b) for a smoothed-noise texture; frame_a(p) = frame_b(p + flow(p)).

    frame_a is resampled from a periodic frame_b with order-5 splines, so the pair is exact up to
    interpolation error far below the bounds tested (bilinear resampling would blur it).
    """
    from scipy.ndimage import gaussian_filter, map_coordinates

    rng = np.random.default_rng(seed)
    frame_b = gaussian_filter(rng.standard_normal((size, size)), 2.0, mode="wrap")
    frame_b = 0.5 + 0.2 * frame_b / frame_b.std()
    ys, xs = np.mgrid[0:size, 0:size].astype(np.float64)
    u, v = flow_fn(xs, ys)
    frame_a = map_coordinates(frame_b, [ys + v, xs + u], order=5, mode="grid-wrap")

    def to_rgb(image):
        return torch.tensor(image, dtype=torch.float32).expand(1, 3, size, size) * 2 - 1

    return to_rgb(frame_a), to_rgb(frame_b), torch.tensor(np.stack([u, v]), dtype=torch.float32)[None]


def _shift(dx: float, dy: float):
    return lambda xs, ys: (np.full_like(xs, dx), np.full_like(ys, dy))


def _smooth_field(xs, ys):
    """A smooth non-rigid motion of up to ~2 px."""
    return 1.5 * np.sin(2 * np.pi * ys / 64) + 0.5, np.cos(2 * np.pi * xs / 80) - 0.3


# Mean EPE on a 12-px-cropped interior, worst over 6 seeds at 64 and 128 px: sub-pixel 0.025, few-pixel
# 0.018, smooth field 0.080 (the flow blur rounds its peaks), zero motion 0 exactly. Bounds: ~2-3× margin.
@pytest.mark.parametrize(
    "motion, bound",
    [
        (_shift(0.0, 0.0), 1e-3),
        (_shift(0.3, -0.6), 0.06),
        (_shift(2.5, 1.0), 0.06),
        (_shift(-4.0, 3.0), 0.1),
        (_smooth_field, 0.15),
    ],
    ids=["zero", "subpixel", "2.5,1", "-4,3", "smooth"],
)
@pytest.mark.parametrize("size", [64, 128])
def test_classical_accuracy(motion, bound, size):
    frame_a, frame_b, truth = _texture_pair(size, motion, seed=size)
    with torch.no_grad():
        flow = ClassicalFlow()(frame_a, frame_b)
    epe = (flow - truth)[..., 12:-12, 12:-12].norm(dim=1).mean().item()
    assert epe < bound, f"EPE {epe:.3f} px >= {bound}"


def test_classical_finite_gradients_on_flat_frames(device):
    """A flat pair (zero structure tensor) must give zero flow and finite gradients, also in float64."""
    for dtype in (torch.float32, torch.float64):
        a = torch.zeros(1, 3, 40, 33, dtype=dtype, device=device, requires_grad=True)
        b = torch.full((1, 3, 40, 33), 0.2, dtype=dtype, device=device, requires_grad=True)
        flow = ClassicalFlow().to(device, dtype)(a, b)
        assert flow.dtype == dtype and flow.shape == (1, 2, 40, 33) and flow.abs().max() < 1e-6
        flow.sum().backward()
        assert torch.isfinite(a.grad).all() and torch.isfinite(b.grad).all()


def _ped2_pair(gap: int):
    """Frames 000 and 000+gap of Ped2 training video 01 as BGR uint8 arrays."""
    cv2 = pytest.importorskip("cv2")
    paths = [PED2 / "000.jpg", PED2 / f"{gap:03d}.jpg"]
    if not all(p.is_file() for p in paths):
        pytest.skip(f"Ped2 frames absent under {PED2} (the shared data is only on the project machines)")
    return [cv2.imread(str(p)) for p in paths]


# Measured on 240×360 Ped2 video 01 against DIS (medium preset), 8-px border dropped; "moving" = DIS
# magnitude > 0.5 px (9% / 21% of the pixels). gap 1: EPE all 0.19, moving 0.24, corr 0.95;
# gap 2: 0.31, 0.39, 0.93. (For scale, Farnebäck vs DIS on the same pixels: moving EPE 0.30 / 0.59.)
@pytest.mark.parametrize("gap, max_epe_all, max_epe_moving, min_corr", [(1, 0.3, 0.4, 0.85), (2, 0.45, 0.6, 0.8)])
def test_classical_agrees_with_opencv_on_ped2(gap, max_epe_all, max_epe_moving, min_corr):
    import cv2

    frame_a, frame_b = _ped2_pair(gap)
    dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)
    reference = dis.calc(cv2.cvtColor(frame_a, cv2.COLOR_BGR2GRAY), cv2.cvtColor(frame_b, cv2.COLOR_BGR2GRAY), None)
    reference = torch.from_numpy(reference).permute(2, 0, 1)[None]

    def to_net(bgr):
        return torch.from_numpy(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)).permute(2, 0, 1)[None].float() / 127.5 - 1

    with torch.no_grad():
        flow = ClassicalFlow()(to_net(frame_a), to_net(frame_b))
    flow, reference = flow[..., 8:-8, 8:-8], reference[..., 8:-8, 8:-8]
    epe = (flow - reference).norm(dim=1)[0]
    moving = reference.norm(dim=1)[0] > 0.5
    corr = np.corrcoef(flow[:, :, moving].flatten().numpy(), reference[:, :, moving].flatten().numpy())[0, 1]
    print(
        f"gap {gap}: EPE all {epe.mean():.3f}, moving {epe[moving].mean():.3f} "
        f"({moving.float().mean():.1%} px), corr {corr:.3f}"
    )
    assert moving.sum() > 1000, "too few moving pixels for a meaningful comparison"
    assert epe.mean() < max_epe_all and epe[moving].mean() < max_epe_moving and corr > min_corr


# ------------------------------------------------------------------------------------------ estimator choice


def test_build_auto_without_checkpoint_is_silent(tmp_path):
    """Without FlowNet2-SD's file auto is the classical estimator, without a word (also with RIFE's wheel)."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # any warning fails the test
        est, name = build_flow_estimator("auto", tmp_path / "missing.pth", "cpu")
    assert name == "classical" and isinstance(est, ClassicalFlow) and not est.training
    assert all(not p.requires_grad for p in est.parameters())


def test_build_none_and_unknown():
    assert FLOW_CHOICES == ("auto", "flownet2sd", "rife", "classical", "none")
    assert build_flow_estimator("none", None, "cpu") == (None, "none")
    est, name = build_flow_estimator("classical", None, torch.device("cpu"))
    assert name == "classical" and isinstance(est, ClassicalFlow)
    with pytest.raises(FFPError, match="--flownet"):
        build_flow_estimator("raft", None, "cpu")
    assert DEFAULT_FLOWNET2SD_PATH == ROOT / "flownet" / "pretrained" / "FlowNet2-SD.pth"


def test_flownet2sd_returns_pixels():
    """FlowNet-SD predicts pixel flow × 20 (its training targets); forward divides by 20, as NVIDIA's FlowNet2
    does with its SD branch and flownet2-tf (the official FFP code's estimator) with × 0.05. A network whose
    only non-zero parameter makes predict_flow2 output (20, 40) everywhere must therefore report (1, 2) px."""
    net = FlowNet2SD()
    with torch.no_grad():
        for p in net.parameters():
            p.zero_()
        net.predict_flow2.bias.copy_(torch.tensor([20.0, 40.0]))
    flow = net(torch.rand(1, 3, 2, 64, 128) * 255)
    assert flow.shape == (1, 2, 64, 128)
    assert torch.allclose(flow[:, 0], torch.ones(())) and torch.allclose(flow[:, 1], torch.full((), 2.0))


def test_motion_loss_is_in_pixels_with_classical_flow():
    """The official λ_op assumes pixel flow: a prediction that moves the scene 1 px further (in x) than the real
    next frame costs ≈ 0.5 in L_op, the mean of |Δu| = 1 and |Δv| = 0 (not 1/800: a 1/400 scale once left the
    classical estimator's term ~400× weaker than the official code's)."""
    from training.losses import flow_loss

    target, last, _ = _texture_pair(64, _shift(1.0, 0.0), seed=5)  # same texture `last` moved 1 px ...
    pred, _, _ = _texture_pair(64, _shift(2.0, 0.0), seed=5)  # ... and 2 px
    loss = flow_loss(ClassicalFlow(), last, pred, target).item()
    assert 0.45 < loss < 0.55, loss
