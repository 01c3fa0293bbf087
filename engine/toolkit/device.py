"""Which device jobs run on, and a fixed CPU thread count so that latencies are comparable."""

from __future__ import annotations

import functools
import re

from engine.toolkit.config import LabError
from storage import settings

_SM = re.compile(r"\(sm(\d+)\)")


@functools.lru_cache(maxsize=1)
def setup() -> str:
    """Pin torch's thread count (LAB_THREADS) once per process and return the job device."""
    import torch

    torch.set_num_threads(settings.threads())
    want = settings.device()
    if want == "cuda" and not torch.cuda.is_available():
        raise LabError("LAB_DEVICE=cuda but no CUDA GPU is visible; unset LAB_DEVICE or set "
                       "it to cpu")
    return "cuda" if want in ("auto", "cuda") and torch.cuda.is_available() else "cpu"


def compute_capability(description: str) -> int | None:
    """The GPU generation in a `describe()` text: "cuda:NVIDIA H100 (sm90)" -> 90; None for
    a CPU or a text without one. Cheap (no torch): pages and submit check schemes with it."""
    found = _SM.search(description)
    return int(found.group(1)) if found else None


def describe(device: str | None = None) -> str:
    """A short description, e.g. `cpu (2 threads)` or `cuda:NVIDIA H100 80GB HBM3 (sm90)`."""
    import torch

    device = device or setup()
    if device.startswith("cuda"):
        major, minor = torch.cuda.get_device_capability()
        return f"cuda:{torch.cuda.get_device_name()} (sm{major}{minor})"
    return f"cpu ({torch.get_num_threads()} threads)"


def synchronize(device: str) -> None:
    import torch

    if device.startswith("cuda"):
        torch.cuda.synchronize()


def fast_bf16(device: str) -> bool:
    """Does `device` multiply in bf16 natively (so bf16 autocast is faster, not emulated)?
    CUDA: Ampere (sm80) or newer; CPU: AVX-512 BF16 or AMX instructions."""
    import torch

    if device.startswith("cuda"):
        return torch.cuda.is_available() and torch.cuda.get_device_capability()[0] >= 8
    probes = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")  # private, so guarded
    return any(getattr(torch.cpu, name, lambda: False)() for name in probes)
