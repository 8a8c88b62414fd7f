# SPDX-License-Identifier: GPL-3.0-or-later
"""Which device and dtype the engine runs on."""
from __future__ import annotations

from dataclasses import dataclass

DTYPES = ("float32", "float16", "bfloat16")


@dataclass(frozen=True)
class Placement:
    device: str  # "cuda", "mps" or "cpu"
    dtype: str   # one of DTYPES


def choose_placement(device: str | None = None, dtype: str | None = None) -> Placement:
    """cuda: bf16 where supported, else fp16; mps: fp16; cpu: fp32. Either can be overridden."""
    import torch

    if not device:
        if torch.cuda.is_available():
            device = "cuda"
        elif getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            device = "mps"
        else:
            device = "cpu"
    if not dtype:
        if device.startswith("cuda"):
            dtype = "bfloat16" if torch.cuda.is_bf16_supported() else "float16"
        elif device == "mps":
            dtype = "float16"
        else:
            dtype = "float32"
    if dtype not in DTYPES:
        raise ValueError(f"dtype must be one of {DTYPES}, not {dtype!r}")
    return Placement(device=device, dtype=dtype)


def torch_dtype(name: str):
    import torch
    return getattr(torch, name)
