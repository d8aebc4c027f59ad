"""The training step: G then D, no gradient leak from G's loss into D, frozen flow network untouched."""
import copy

import torch

from config import build_config
from flownet import FLOW_LOSS_SCALE, FlowNet2SD, FlowNet2SDFlow
from model import Discriminator, Generator, init_weights
from training import losses
from training.step import Nets, split_clip, train_step


def make_nets(cfg, flow=None, seed=0):
    torch.manual_seed(seed)
    g, d = Generator(cfg.in_frames, cfg.g_widths), Discriminator(cfg.d_widths)
    init_weights(g)
    init_weights(d)
    return Nets(g, d, torch.optim.Adam(g.parameters(), cfg.lr_g, betas=cfg.adam_betas),
                torch.optim.Adam(d.parameters(), cfg.lr_d, betas=cfg.adam_betas), flow, FLOW_LOSS_SCALE)


def tiny_cfg(**over):
    return build_config("synthetic", "tiny", {"flownet": "none", "height": 64, "width": 64, **over})


def random_clip(cfg, seed=1):
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (2, cfg.in_frames + 1, 3, cfg.height, cfg.width), generator=g, dtype=torch.uint8)


def test_discriminator_update_sees_only_its_own_loss():
    cfg = tiny_cfg()
    nets = make_nets(cfg)
    reference = copy.deepcopy(nets)
    clip = random_clip(cfg)
    train_step(nets, cfg, clip, torch.device("cpu"))

    # Reference D update: the D loss alone on the prediction G made before its own update.
    inputs, target = split_clip(clip, torch.device("cpu"))
    with torch.no_grad():
        pred = reference.g(inputs)
    reference.opt_d.zero_grad()
    losses.adversarial_d_loss(reference.d(target), reference.d(pred)).backward()
    reference.opt_d.step()
    for p, q in zip(nets.d.parameters(), reference.d.parameters()):
        assert torch.equal(p, q)
    assert all(p.requires_grad for p in nets.d.parameters())   # D is trainable again after G's update


def test_generator_update_uses_adversarial_and_intensity_terms():
    cfg = tiny_cfg()
    clip = random_clip(cfg)
    a, b = make_nets(cfg), make_nets(cfg)
    train_step(a, cfg, clip, torch.device("cpu"))
    train_step(b, tiny_cfg(lambda_adv=0.0), clip, torch.device("cpu"))
    assert any(not torch.equal(p, q) for p, q in zip(a.g.parameters(), b.g.parameters()))


def test_frozen_flownet_receives_no_gradient_and_stays_unchanged():
    cfg = tiny_cfg()
    flow_net = FlowNet2SD().eval().requires_grad_(False)
    estimator = FlowNet2SDFlow(flow_net)
    before = {k: v.clone() for k, v in flow_net.state_dict().items()}
    with_flow = make_nets(cfg, flow=estimator)
    without = make_nets(cfg)
    clip = random_clip(cfg)
    parts = train_step(with_flow, cfg, clip, torch.device("cpu"))
    train_step(without, cfg, clip, torch.device("cpu"))
    assert "op" in parts and parts["op"] > 0
    assert all(p.grad is None for p in flow_net.parameters())
    assert all(torch.equal(before[k], v) for k, v in flow_net.state_dict().items())
    # The flow term changed the generator's update: its gradient really reached G.
    assert any(not torch.equal(p, q) for p, q in zip(with_flow.g.parameters(), without.g.parameters()))
