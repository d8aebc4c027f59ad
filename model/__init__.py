"""Networks: the U-Net generator and the PatchGAN discriminator, with the official initialisation."""

from torch import nn

from .discriminator import Discriminator, discriminator_receptive_field
from .generator import Generator


def init_weights(module: nn.Module) -> None:
    """Official initialisation: Glorot (Xavier) uniform weights, zero biases, for every (transposed) conv."""
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
            nn.init.xavier_uniform_(m.weight)
            if m.bias is not None:
                nn.init.zeros_(m.bias)


__all__ = ["Generator", "Discriminator", "init_weights", "discriminator_receptive_field"]
