"""What a result was computed with: the checkout's commit, the runtime, the device and the CPU's name."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch


def repo_root() -> Path:
    """The repository root (the folder holding the utils package)."""
    return Path(__file__).resolve().parents[1]


def cpu_name() -> str:
    """The CPU's model name and widest vector extension ('AMD EPYC 7B13, AVX-512'), from /proc/cpuinfo where it
    exists (timings differ several-fold between AVX2 and AVX-512 machines); the platform's name elsewhere."""
    import platform

    try:
        info = Path("/proc/cpuinfo").read_text()
    except OSError:
        return platform.processor() or platform.machine()
    model = next(
        (line.split(":", 1)[1].strip() for line in info.splitlines() if line.startswith("model name")),
        platform.machine(),
    )
    flags = next((line.split(":", 1)[1].split() for line in info.splitlines() if line.startswith("flags")), [])
    vector = "AVX-512" if "avx512f" in flags else "AVX2" if "avx2" in flags else None
    return f"{model}, {vector}" if vector else model


def run_environment(
    device: torch.device | str, date_label: str, runtime: tuple[str, str] | None = None
) -> dict[str, str]:
    """What a result was computed with, as rows of a report header: {date_label: UTC date, 'git commit': this
    checkout's commit ('-dirty' when it has uncommitted changes; 'not a git checkout' outside one), 'torch' (or
    `runtime`'s name): its version, 'device': the device with the GPU's or CPU's name when known}.

    runtime: (name, version) of what ran the model when it is not torch (e.g. ('onnxruntime', '1.32.0'), with
    `device` a plain string): torch is then not imported."""
    import datetime
    import subprocess

    def git(*args: str) -> str | None:
        try:
            out = subprocess.run(["git", *args], cwd=repo_root(), capture_output=True, text=True, timeout=10)
        except (OSError, subprocess.SubprocessError):
            return None
        return out.stdout.strip() if out.returncode == 0 else None

    commit = git("rev-parse", "--short=12", "HEAD")
    if commit and git("status", "--porcelain", "--untracked-files=no"):
        commit += "-dirty"
    name: str | None
    if runtime is None:
        import torch

        runtime = ("torch", torch.__version__)
        name = torch.cuda.get_device_name(device) if torch.device(device).type == "cuda" else cpu_name()
    else:
        name = cpu_name() if str(device) == "cpu" else None
    return {
        date_label: datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "git commit": commit or "not a git checkout",
        runtime[0]: runtime[1],
        "device": f"{device} ({name})" if name else str(device),
    }


def shared_data_dir() -> Path:
    """`<repo>/../shared/data`, where the real datasets live on the project's machines (may not exist)."""
    return repo_root().parent / "shared" / "data"
