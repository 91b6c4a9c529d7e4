"""Peak memory of one call, shared by the benchmarks: the device's allocator on CUDA, the
torch profiler's allocation records on CPU.

On CUDA it is ``torch.cuda.max_memory_allocated`` over the call, less what was allocated
before it. On CPU, where PyTorch keeps no peak, the call runs under ``torch.profiler`` with
``profile_memory=True``: every op event carries the bytes its own code allocated less those it
freed, and frees outside any op come as ``[memory]`` events; their running sum in time order is
the memory the call holds beyond what was live before it, and its maximum is the peak. This
counts the tensors of PyTorch's CPU allocator at the granularity of ops (a buffer an op
allocates and frees inside itself is not seen); the profiler records no free of a block
allocated before it started (it warns so), so a call that replaces older tensors, such as last
step's gradients, is charged for the new ones without the old ones' release. It does not count
the process's resident memory, which the allocator and the C library keep cached.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from timing import sync
from torch.profiler import ProfilerActivity, profile


def peak_bytes(fn: Callable[[], object], device: torch.device) -> int:
    """The most memory ``fn()`` holds at once beyond what was allocated before the call."""
    if device.type == "cuda":
        sync(device)
        before = torch.cuda.memory_allocated(device)
        torch.cuda.reset_peak_memory_stats(device)
        fn()
        sync(device)
        return int(torch.cuda.max_memory_allocated(device) - before)
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        fn()
    live = peak = 0
    for event in sorted(prof.events(), key=lambda e: e.time_range.start):
        live += event.self_cpu_memory_usage
        peak = max(peak, live)
    return peak
