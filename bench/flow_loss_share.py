"""How much of the generator's gradient the motion loss carries, per flow estimator: the data behind λ_op.

Usage: python bench/flow_loss_share.py [--trained_model weights/ped2_cpu.pth] [--data_root data] [--windows 8]

For --windows real training windows of the checkpoint's dataset (spread evenly over its training videos, at the
checkpoint's size), the checkpoint's generator predicts the 5th frame; then, for each estimator, the motion loss
L_op = mean|F(I_t, Î) − F(I_t, I)| (pixels) and the norm of its gradient with respect to the prediction Î are
measured, beside the gradient norm of the appearance terms λ_int·L_int + λ_gd·L_gd (the checkpoint's λ). The
motion term's share of the gradient at Î is λ_op·‖∇L_op‖ / (λ_op·‖∇L_op‖ + ‖∇appearance‖); the adversarial term
is left out (its gradient depends on a discriminator that a generator-only checkpoint does not carry).
`--reference classical:0.005` prints the λ_op at which each other estimator's motion gradient equals that of the
reference estimator at its weight. Writes bench/flow_loss_share.json.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import replace
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # runnable as `python bench/flow_loss_share.py` from anywhere
    sys.path.insert(0, str(ROOT))

from checkpoint import load_checkpoint  # noqa: E402
from config import Config  # noqa: E402
from dataset import prepare_dataset, to_network_range, training_videos  # noqa: E402
from flownet import build_flow_estimator  # noqa: E402
from inference.predict import generator_from_state  # noqa: E402
from training import losses  # noqa: E402
from utils.files import atomic_write_text  # noqa: E402

ESTIMATORS = ("classical", "rife")


def training_windows(cfg: Config, count: int) -> torch.Tensor:
    """count×(T+1)×3×H×W in [-1, 1]: windows spread evenly over the training videos' frames."""
    videos = training_videos(prepare_dataset(cfg), cfg)
    span = cfg.in_frames + 1
    starts = [(v, s) for v in videos for s in range(0, len(v) - span + 1, span)]
    picks = [starts[round(i * (len(starts) - 1) / max(count - 1, 1))] for i in range(count)]
    clips = [
        torch.stack([torch.from_numpy(v.source.read(i, cfg.height, cfg.width)) for i in range(s, s + span)])
        for v, s in picks
    ]
    return to_network_range(torch.stack(clips).permute(0, 1, 4, 2, 3))


def gradient_norm(loss: torch.Tensor, pred: torch.Tensor) -> float:
    """‖∂loss/∂pred‖ (Frobenius, over the whole batch)."""
    (grad,) = torch.autograd.grad(loss, pred)
    return float(grad.norm())


def measure(cfg: Config, state: dict, clips: torch.Tensor, names: tuple[str, ...]) -> dict:
    """{estimator: {'l_op', 'grad_op'}, 'appearance': {...}} for the checkpoint's generator on `clips`."""
    g = generator_from_state(state, cfg, torch.device("cpu"), "--trained_model")
    b, t1 = clips.shape[:2]
    inputs, target = clips[:, :-1].reshape(b, (t1 - 1) * 3, *clips.shape[-2:]), clips[:, -1]
    with torch.no_grad():
        pred0 = g(inputs)
    pred = pred0.clone().requires_grad_(True)
    appearance = cfg.lambda_int * losses.intensity_loss(pred, target) + cfg.lambda_gd * losses.gradient_loss(
        pred, target
    )
    out: dict = {"appearance": {"loss": float(appearance.detach()), "grad": gradient_norm(appearance, pred)}}
    for name in names:
        flow, _ = build_flow_estimator(name, None, "cpu")
        assert flow is not None
        l_op = losses.flow_loss(flow, inputs[:, -3:], pred, target)
        out[name] = {"l_op": float(l_op), "grad_op": gradient_norm(l_op, pred)}
    return out


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trained_model", default=str(ROOT / "weights" / "ped2_cpu.pth"))
    parser.add_argument("--data_root", default=None, help="folder holding the checkpoint's dataset (default data/)")
    parser.add_argument("--windows", type=int, default=8)
    parser.add_argument("--reference", default="classical:0.005", help="ESTIMATOR:λ_op to match")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)
    ref_name, _, ref_weight = args.reference.partition(":")
    if ref_name not in ESTIMATORS or not ref_weight.replace(".", "", 1).isdigit():
        parser.error(f"--reference {args.reference}: expected ESTIMATOR:λ_op with ESTIMATOR one of {ESTIMATORS}")
    torch.set_num_threads(args.threads)
    state = load_checkpoint(args.trained_model)
    cfg = Config.from_dict(state["config"])
    cfg = replace(cfg, data_root=args.data_root) if args.data_root else cfg
    clips = training_windows(cfg, args.windows)
    result = measure(cfg, state, clips, ESTIMATORS)
    ref_grad = float(ref_weight) * result[ref_name]["grad_op"]
    appearance = result["appearance"]["grad"]
    print(f"appearance terms: loss {result['appearance']['loss']:.4g}, ‖∇‖ {appearance:.4g}")
    for name in ESTIMATORS:
        row = result[name]
        row["lambda_op_matching_reference"] = ref_grad / row["grad_op"]
        shares = {lam: lam * row["grad_op"] / (lam * row["grad_op"] + appearance) for lam in (0.005, 0.1, 2.0)}
        row["gradient_share"] = {str(k): v for k, v in shares.items()}
        print(
            f"{name}: L_op {row['l_op']:.4g} px, ‖∇L_op‖ {row['grad_op']:.4g}; gradient share at λ_op "
            + ", ".join(f"{k:g}: {v:.1%}" for k, v in shares.items())
            + f"; λ_op matching {args.reference}: {row['lambda_op_matching_reference']:.4g}"
        )
    out = {"trained_model": args.trained_model, "windows": args.windows, "reference": args.reference, **result}
    atomic_write_text(Path(__file__).resolve().with_suffix(".json"), json.dumps(out, indent=2) + "\n")
    return out


if __name__ == "__main__":
    main()
