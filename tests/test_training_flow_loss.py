"""The motion constraint really trains the generator: for both estimators, the gradient of
training.losses.flow_loss reaches the generator, equals a finite-difference estimate, never touches the
frozen estimator, and vanishes if the predicted flow is detached (the bug this guards against).
"""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

ROOT = Path(__file__).resolve().parents[1]

from flownet import ClassicalFlow, FlowNet2SD, IFNetFlow  # noqa: E402
from flownet.estimator import FlowNet2SDFlow, freeze  # noqa: E402
from model import Generator, init_weights  # noqa: E402
from training.losses import flow_loss  # noqa: E402

SIZE = 64


def _clip(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """(1×12×64×64 input, 1×3×64×64 target) in [-1, 1]: a smooth texture panning 1 px right per frame,
    so the flows are real motions rather than noise."""
    from scipy.ndimage import gaussian_filter

    rng = np.random.default_rng(seed)
    texture = gaussian_filter(rng.standard_normal((3, SIZE + 16, SIZE + 16)), (0, 2, 2))
    texture = torch.tensor(0.4 * texture / texture.std(), dtype=torch.float32).clamp(-1, 1)
    frames = [texture[:, 8 : 8 + SIZE, 8 - i : 8 - i + SIZE] for i in range(5)]
    return torch.cat(frames[:4])[None], frames[4][None]


def _generator(seed: int = 0) -> Generator:
    """Tiny generator with Xavier weights and small RANDOM biases: with the official zero biases, dead
    ReLU regions put pre-activations exactly at the kink (conv of zeros + 0), where the loss has no
    derivative and finite differences legitimately disagree with autograd."""
    torch.manual_seed(seed)
    gen = Generator(in_frames=4, widths=(4, 8))
    init_weights(gen)
    for m in gen.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
            nn.init.uniform_(m.bias, -0.1, 0.1)
    return gen


def _estimator(name: str) -> nn.Module:
    """A frozen estimator: the weights-free one, or FlowNet2-SD or RIFE's IFNet with random weights (and random
    biases, for the same kink reason as the generator)."""
    torch.manual_seed(1)
    if name == "classical":
        return freeze(ClassicalFlow(), "cpu")
    if name == "rife":
        return freeze(IFNetFlow(), "cpu")  # PyTorch's default init draws the biases at random already
    net = FlowNet2SD()
    for m in net.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
            nn.init.uniform_(m.bias, -0.01, 0.01)
    return freeze(FlowNet2SDFlow(net), "cpu")


class _Detached(nn.Module):
    """The bug: an estimator whose output is detached, so the loss cannot reach the generator."""

    def __init__(self, inner: nn.Module):
        super().__init__()
        self.inner = inner

    def forward(self, frame_a: torch.Tensor, frame_b: torch.Tensor) -> torch.Tensor:
        return self.inner(frame_a, frame_b).detach()


def _motion_loss(estimator: nn.Module, gen: Generator, clip: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """flow_loss of the generator's prediction, exactly as training calls it."""
    return flow_loss(estimator, clip[:, 9:12], gen(clip), target)


def _flat_grad(loss: torch.Tensor, params: list[torch.Tensor]) -> torch.Tensor:
    """d loss / d params as one vector (zeros for parameters the loss does not reach); keeps the graph."""
    grads = torch.autograd.grad(loss, params, allow_unused=True, retain_graph=True)
    return torch.cat([(g if g is not None else torch.zeros_like(p)).flatten() for g, p in zip(grads, params)])


@pytest.fixture(scope="module", params=["classical", "flownet2sd", "rife"])
def estimator(request):
    """Each test runs once per estimator kind."""
    return _estimator(request.param)


def test_gradient_matches_finite_differences(estimator):
    """Central differences along a random unit direction in parameter space, in float64.

    The loss is only piecewise smooth (ReLU, LeakyReLU, bilinear sampling, the L1): along a direction,
    kinks lie ~1e-6 apart, so the step must be smaller than that. Measured over 10 directions at step
    1e-7: relative error ≤ 1e-6 for both estimators (at step 1e-6 a crossed kink gave up to 2e-2).
    Round-off at 1e-7 is ~1e-7 relative; the bound 1e-4 keeps a wide margin.
    """
    clip, target = (t.double() for t in _clip())
    gen, est = _generator().double(), copy.deepcopy(estimator).double()
    params = list(gen.parameters())
    grad = _flat_grad(_motion_loss(est, gen, clip, target), params)
    assert grad.norm() > 0
    direction = torch.randn(grad.numel(), generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    direction /= direction.norm()
    step = 1e-7
    base = torch.nn.utils.parameters_to_vector(params).detach().clone()

    def loss_at(offset: float) -> float:
        with torch.no_grad():
            torch.nn.utils.vector_to_parameters(base + offset * direction, params)
            return _motion_loss(est, gen, clip, target).item()

    finite_diff = (loss_at(step) - loss_at(-step)) / (2 * step)
    torch.nn.utils.vector_to_parameters(base, params)
    analytic = torch.dot(grad, direction).item()
    assert abs(finite_diff - analytic) <= 1e-4 * abs(analytic), (finite_diff, analytic)


def test_estimator_is_frozen_through_an_optimizer_step(estimator):
    clip, target = _clip()
    gen = _generator()
    before = {k: v.clone() for k, v in estimator.state_dict().items()}
    gen_before = torch.nn.utils.parameters_to_vector(gen.parameters()).detach().clone()
    optimizer = torch.optim.Adam(gen.parameters(), lr=1e-3)
    _motion_loss(estimator, gen, clip, target).backward()
    optimizer.step()
    assert all(p.grad is None and not p.requires_grad for p in estimator.parameters())
    assert all(torch.equal(v, before[k]) for k, v in estimator.state_dict().items())
    assert not torch.equal(torch.nn.utils.parameters_to_vector(gen.parameters()), gen_before)


def test_detached_flow_gives_no_generator_gradient(estimator):
    """Regression guard: detaching F(I_t, Î_{t+1}) silently turns the motion loss into a constant."""
    clip, target = _clip()
    gen = _generator()
    params = list(gen.parameters())
    pred = gen(clip)
    working = flow_loss(estimator, clip[:, 9:12], pred, target)
    broken = flow_loss(_Detached(estimator), clip[:, 9:12], pred, target)
    assert torch.allclose(working, broken)  # same value ...
    assert _flat_grad(working, params).norm() > 0  # ... but only the real one trains the generator
    assert not broken.requires_grad
    # Adding 0·pred gives the broken loss a graph, to show its generator gradient is exactly zero.
    assert _flat_grad(broken + 0 * pred.sum(), params).abs().max() == 0
