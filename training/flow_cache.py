"""The real frames' optical flow F(I_t, I_t+1), computed once per frame pair and kept in RAM.

The motion loss compares the flow of the prediction with the flow of the real frame. The second needs no gradient
and depends only on the two real frames, so a training run that visits each window several times can compute it
once. With RIFE's IFNet that flow is about a third of the `--preset cpu` step (docs/performance.md).

Each pair is computed alone (batch 1) and stored in float16; every use, the first included, reads the stored
value. So the result of a step does not depend on which other windows shared its batch or on what an earlier
part of the run computed, and a resumed run repeats an uninterrupted one bit for bit. float16 rounds a flow of a
few pixels by less than 0.002 px, far below any estimator's error. Pairs are keyed by their content (BLAKE2b of
both frames), so the cache needs no window index from the data loader.
"""

from __future__ import annotations

import hashlib

import torch
from torch import nn

STORED_DTYPE = torch.float16


class RealFlowCache:
    """F(last_input, target) per frame pair, memoised within `max_bytes` of RAM.

    Call with last_input, target: B×3×H×W in [-1, 1] (any memory format, any device) -> B×2×H×W float32 flow
    in pixels on their device, without a graph. Pairs beyond the budget are computed at each use, still alone and
    rounded the same way, so the budget changes the speed, never the numbers.
    """

    def __init__(self, flow_net: nn.Module, max_bytes: float):
        self.flow_net, self.max_bytes = flow_net, max_bytes
        self.store: dict[bytes, torch.Tensor] = {}
        self.bytes = 0
        self.hits = self.misses = 0

    def __call__(self, last_input: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        flows = [self._one(last_input[i : i + 1], target[i : i + 1]) for i in range(target.shape[0])]
        return torch.cat(flows).to(target.device, torch.float32)

    def _one(self, frame_a: torch.Tensor, frame_b: torch.Tensor) -> torch.Tensor:
        key = pair_key(frame_a, frame_b)
        flow = self.store.get(key)
        if flow is not None:
            self.hits += 1
            return flow
        self.misses += 1
        with torch.no_grad():
            flow = self.flow_net(frame_a, frame_b).to("cpu", STORED_DTYPE).contiguous()
        if self.bytes + flow.nbytes <= self.max_bytes:
            self.store[key] = flow
            self.bytes += flow.nbytes
        return flow


def pair_key(frame_a: torch.Tensor, frame_b: torch.Tensor) -> bytes:
    """A 16-byte digest of two frames' values and shapes (whatever their memory format or device)."""
    digest = hashlib.blake2b(digest_size=16)
    for frame in (frame_a, frame_b):
        values = frame.detach().to("cpu").contiguous()
        digest.update(str(tuple(values.shape)).encode())
        digest.update(values.numpy().tobytes())
    return digest.digest()


def flow_cache_bytes(pairs: int, height: int, width: int) -> int:
    """RAM the cache takes to hold `pairs` flows at height × width."""
    return pairs * 2 * height * width * torch.finfo(STORED_DTYPE).bits // 8
