# SPDX-License-Identifier: GPL-3.0-or-later
"""Seamless tiling: the image wraps around along x, y or both, like a torus.

Every padded convolution of the pipeline's image models (UNet, VAE, ControlNets) pads
circularly along the tiled axes instead of with zeros, so the left edge of every feature
map is the right edge's neighbour. The whole network then computes a function on the
torus, and the decoded image continues across its own borders: a tileable texture
(x and y) or a 360° panorama (x only).

The change is made for one call and undone afterwards (`seamless` is a context manager):
each convolution gets an instance attribute that shadows its class's `_conv_forward`, and
deleting it restores the class method exactly, so a later generation without tiling is
bit for bit what it would have been.
"""
from __future__ import annotations

import contextlib
from collections.abc import Iterator

from .errors import DiffusionError

AXES = ("", "x", "y", "xy")
AXIS_NAMES = {"": "none", "x": "left/right", "y": "top/bottom", "xy": "both"}


def check_axes(axes: str) -> None:
    """Refuse a tiling value other than "", "x", "y" or "xy"."""
    if axes not in AXES:
        raise DiffusionError(f"Tiling {axes!r} is not one of {', '.join(repr(a) for a in AXES)}",
                             "pick none, x (panoramas), y, or xy (tileable textures)")


@contextlib.contextmanager
def seamless(pipe, axes: str) -> Iterator[int]:
    """Within the block, `pipe`'s convolutions wrap around along `axes` ("" does nothing).

    Yields how many convolutions were changed. They are restored when the block ends,
    whether it ends normally, by cancellation or by an error.
    """
    check_axes(axes)
    if not axes:
        yield 0
        return
    convs = padded_convolutions(pipe)
    for conv in convs:
        conv._conv_forward = _wrapping_forward(conv, axes)
    try:
        yield len(convs)
    finally:
        for conv in convs:
            del conv._conv_forward  # the class's own method shows through again


def seam_note(pipe, axes: str, width: int, height: int) -> str:
    """A note when the size does not halve evenly down the UNet: a strided convolution then
    meets the wrap-around off its grid, and a faint seam can remain. "" when it is exact."""
    if not axes:
        return ""
    levels = len(pipe.unet.config.block_out_channels) - 1  # each level but the last halves the latent
    multiple = 8 * 2 ** levels
    sizes = [size for axis, size in (("x", width), ("y", height)) if axis in axes and size % multiple]
    if not sizes:
        return ""
    return (f"seamless tiling is exact at sizes that are multiples of {multiple} pixels for this model; "
            f"{width}×{height} may keep a faint seam")


def padded_convolutions(pipe) -> list:
    """The zero-padded 2D convolutions of every image model of `pipe`, each once.

    All components are searched (the text encoders have none), so ControlNets, several
    ControlNets, and an adapter's convolutions are included without naming them.
    """
    import torch

    found, seen = [], set()
    for component in pipe.components.values():
        if not isinstance(component, torch.nn.Module):
            continue
        for module in component.modules():
            if id(module) in seen or not _is_zero_padded_conv(module):
                continue
            seen.add(id(module))
            found.append(module)
    return found


def is_wrapping(conv) -> bool:
    """Whether `conv` currently pads circularly (has our forward patched in)."""
    return "_conv_forward" in vars(conv)


def _is_zero_padded_conv(module) -> bool:
    import torch

    if not isinstance(module, torch.nn.Conv2d):
        return False
    if isinstance(module.padding, str) or module.padding_mode != "zeros":
        return False  # "same"/"valid" or already non-zero padding: diffusers uses neither
    if is_wrapping(module):
        return False  # patched by someone else (or a nested call): leave it as it is
    return any(module.padding)


def _wrapping_forward(conv, axes: str):
    """A replacement for `conv._conv_forward`: pad (circular on `axes`, zeros elsewhere), then convolve."""
    import torch.nn.functional as F

    pad_y, pad_x = conv.padding
    mode_x = "circular" if "x" in axes else "constant"
    mode_y = "circular" if "y" in axes else "constant"
    stride, dilation, groups = conv.stride, conv.dilation, conv.groups

    def forward(input, weight, bias):
        padded = F.pad(input, (pad_x, pad_x, 0, 0), mode=mode_x)
        padded = F.pad(padded, (0, 0, pad_y, pad_y), mode=mode_y)
        return F.conv2d(padded, weight, bias, stride, 0, dilation, groups)

    return forward
