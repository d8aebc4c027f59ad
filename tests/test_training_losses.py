"""Each loss on tensors small enough to compute by hand."""

import pytest
import torch

from training.losses import adversarial_d_loss, adversarial_g_loss, flow_loss, gradient_loss, intensity_loss


def test_intensity_is_mse():
    pred = torch.tensor([[[[0.0, 1.0], [0.5, -1.0]]]])
    target = torch.tensor([[[[0.0, 0.0], [0.0, 0.0]]]])
    # (0 + 1 + 0.25 + 1) / 4
    assert intensity_loss(pred, target).item() == pytest.approx(0.5625)


def test_gradient_loss_hand_computed_with_zero_padding():
    # One 1×2 row: pred [1, 3], target [0, 0].
    # Right/bottom zero padding as in the official code: pred |dx| = [|3-1|, |0-3|] = [2, 3]; target [0, 0].
    # pred |dy| = [|0-1|, |0-3|] = [1, 3] (the row below is padding); target [0, 0].
    # mean over the 2 pixels of (|2-0| + |1-0|, |3-0| + |3-0|) = (3 + 6) / 2 = 4.5
    pred = torch.tensor([[[[1.0, 3.0]]]])
    target = torch.zeros_like(pred)
    assert gradient_loss(pred, target).item() == pytest.approx(4.5)


def test_gradient_loss_ignores_constant_offset_inside_but_not_at_border():
    base = torch.rand(1, 3, 5, 5)
    # Adding a constant changes no interior difference, only the border differences against the zero pad.
    interior_only = gradient_loss(base + 0.3, base)
    # border column (5 px) and border row (5 px) per channel each change by at most 0.3
    assert 0 < interior_only.item() <= 0.3 * 10 / 25 + 1e-6


def test_least_squares_adversarial_losses():
    d_fake = torch.tensor([0.0, 1.0, 0.5, 0.5])
    d_real = torch.tensor([1.0, 1.0, 0.0, 0.0])
    # G: mean((x-1)^2/2) = (0.5 + 0 + 0.125 + 0.125) / 4
    assert adversarial_g_loss(d_fake).item() == pytest.approx(0.1875)
    # D: mean((real-1)^2/2) = (0 + 0 + 0.5 + 0.5)/4 = 0.25 ; mean(fake^2/2) = (0 + 0.5 + 0.125 + 0.125)/4 = 0.1875
    assert adversarial_d_loss(d_real, d_fake).item() == pytest.approx(0.4375)


class ShiftFlow(torch.nn.Module):
    """A fake 'flow' = difference of mean intensities, enough to check the loss arithmetic and gradient path."""

    def forward(self, a, b):
        diff = (b - a).mean(dim=1, keepdim=True)
        return torch.cat([diff, 2 * diff], dim=1)


def test_flow_loss_value_and_gradient_path(device):
    last = torch.zeros(1, 3, 2, 2, device=device)
    target = torch.zeros(1, 3, 2, 2, device=device)
    pred = torch.full((1, 3, 2, 2), 0.5, device=device, requires_grad=True)
    # flow(last, pred) = [0.5, 1.0] per pixel, flow(last, target) = 0 -> mean |.| = 0.75 (pixels, no rescaling)
    loss = flow_loss(ShiftFlow(), last, pred, target)
    assert loss.item() == pytest.approx(0.75)
    loss.backward()
    assert pred.grad is not None and pred.grad.abs().sum() > 0
