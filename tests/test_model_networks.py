"""Network shapes, value ranges, the 70×70 PatchGAN receptive field, and the official initialisation."""

import torch
from torch import nn

from model import Discriminator, Generator, discriminator_receptive_field, init_weights
from model.discriminator import receptive_field


def test_generator_shapes_range_and_backward(device):
    g = Generator(in_frames=4, widths=(8, 16, 32, 64)).to(device)
    x = torch.rand(2, 12, 64, 96, device=device) * 2 - 1
    y = g(x)
    assert y.shape == (2, 3, 64, 96) and y.device.type == device.type
    assert y.min() >= -1 and y.max() <= 1
    assert g.size_multiple == 8
    y.square().mean().backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in g.parameters())


def test_official_generator_layout():
    g = Generator()
    convs = [m for m in g.modules() if isinstance(m, nn.Conv2d)]
    ups = [m for m in g.modules() if isinstance(m, nn.ConvTranspose2d)]
    assert [c.out_channels for c in convs[:8]] == [64, 64, 128, 128, 256, 256, 512, 512]
    assert all(c.kernel_size == (3, 3) for c in convs)
    assert [(u.in_channels, u.out_channels, u.kernel_size, u.stride) for u in ups] == [
        (512, 256, (2, 2), (2, 2)),
        (256, 128, (2, 2), (2, 2)),
        (128, 64, (2, 2), (2, 2)),
    ]
    assert convs[-1].out_channels == 3
    assert not any(isinstance(m, (nn.BatchNorm2d, nn.InstanceNorm2d)) for m in g.modules())


def test_discriminator_shapes_and_receptive_field(device):
    d = Discriminator().to(device)
    out = d(torch.rand(1, 3, 256, 256, device=device) * 2 - 1)
    assert out.shape == (1, 1, 30, 30)
    assert (out > 0).all() and (out < 1).all()
    out.mean().backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in d.parameters())
    assert discriminator_receptive_field(d) == 70
    # pix2pix's worked example: three 4×4 stride-2 convs and two 4×4 stride-1 convs -> 70.
    assert receptive_field([(4, 2)] * 3 + [(4, 1)] * 2) == 70
    convs = [m for m in d.modules() if isinstance(m, nn.Conv2d)]
    assert [c.out_channels for c in convs] == [128, 256, 512, 512, 1]
    assert [c.stride[0] for c in convs] == [2, 2, 2, 1, 1]


def test_receptive_field_matches_gradient_support():
    """Measure the receptive field directly: which input pixels change one output unit."""
    d = Discriminator(widths=(4, 4, 4, 4)).double()
    init_weights(d)
    x = torch.zeros(1, 3, 160, 160, dtype=torch.double, requires_grad=True)
    out = d(x)
    out[0, 0, 8, 8].backward()
    rows = x.grad.abs().sum(dim=(0, 1, 3)).nonzero().flatten()
    cols = x.grad.abs().sum(dim=(0, 1, 2)).nonzero().flatten()
    assert rows.max() - rows.min() + 1 == 70
    assert cols.max() - cols.min() + 1 == 70


def test_official_init_glorot_uniform_zero_bias():
    g = Generator(widths=(8, 16))
    init_weights(g)
    conv = g.down[0][0]
    fan_in, fan_out = conv.in_channels * 9, conv.out_channels * 9
    bound = (6 / (fan_in + fan_out)) ** 0.5
    assert conv.weight.abs().max() <= bound
    assert conv.weight.abs().max() > 0.8 * bound  # uniform fills the range
    assert torch.count_nonzero(conv.bias) == 0
