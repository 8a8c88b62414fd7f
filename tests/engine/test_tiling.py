# SPDX-License-Identifier: GPL-3.0-or-later
"""Seamless tiling on the smoke models: the edges continue each other along the tiled axes,
only there, and a generation without tiling afterwards is exactly what it was before.

How a seam is measured. The smoke model's images are noise, but its VAE and UNet are real
conv nets, and zero padding leaves its mark where a tile meets its neighbour: the edge
columns come out as a flat, washed-out band (their contrast down the column is 0.2-0.5 of
an interior column's, measured over seeds and both families). With circular padding the
edge columns are like any other (0.66-1.3), and the step across the seam (last column to
first) is like a step between two interior columns. Both are measured with and without
tiling, so the test fails when tiling does nothing.
"""
import numpy as np
import pytest
import torch

from engine import Cancelled, CancelToken, ControlUnit, DiffusionError, Engine, GenerationRequest
from engine.tiling import is_wrapping, padded_convolutions, seamless

PROMPT = "weathered stone wall"


def make_request(**changes) -> GenerationRequest:
    fields = dict(prompt=PROMPT, width=64, height=64, steps=3, seed=4, model="smoke")
    fields.update(changes)
    return GenerationRequest(**fields)


def columns_first(image: np.ndarray, axis: str) -> np.ndarray:
    """The image with the axis across the seam second: x as is, y transposed."""
    return image if axis == "x" else image.transpose(1, 0, 2)


def edge_contrast(image: np.ndarray, axis: str) -> float:
    """Contrast along the two edge columns (or rows) over that of a typical interior one."""
    a = columns_first(image, axis)
    contrast = a.std(axis=0).mean(axis=1)  # per column, averaged over R, G, B
    return float(min(contrast[0], contrast[-1]) / np.median(contrast[4:-4]))


def seam_step(image: np.ndarray, axis: str) -> float:
    """The mean step from the last column (row) to the first over a typical interior step."""
    a = columns_first(image, axis)
    interior = np.abs(np.diff(a, axis=1)).mean(axis=(0, 2))
    return float(np.abs(a[:, 0] - a[:, -1]).mean() / np.median(interior))


@pytest.fixture(scope="module")
def untiled(smoke_engine) -> np.ndarray:
    return smoke_engine.generate(make_request()).images[0]


def test_without_tiling_the_edges_are_a_visible_seam(untiled):
    # The measurement itself: zero padding shows, so the tiled tests below can fail.
    assert edge_contrast(untiled, "x") < 0.55
    assert edge_contrast(untiled, "y") < 0.55


@pytest.mark.parametrize("axes", ["x", "y", "xy"])
def test_tiled_edges_continue_each_other_along_the_tiled_axes_only(smoke_engine, untiled, axes):
    tiled = smoke_engine.generate(make_request(tiling=axes)).images[0]
    for axis in "xy":
        if axis in axes:
            assert edge_contrast(tiled, axis) > 0.65, axis
            assert seam_step(tiled, axis) < 1.5, axis
        else:  # the other axis keeps its zero-padded edges
            assert edge_contrast(tiled, axis) < 0.55, axis
    assert not np.array_equal(tiled, untiled)


def test_tiled_image_lives_on_a_torus(smoke_engine):
    """The exact property behind seamlessness: with every convolution wrapping around, rolling
    the starting noise rolls the image by the same amount (8 pixels per latent pixel). An
    even roll, because the UNet halves the latent once."""
    request = make_request(width=96, height=64)
    pipe = smoke_engine.pipelines.pipeline(smoke_engine.plan(request))
    noise = torch.randn((1, 4, 8, 12), generator=torch.Generator().manual_seed(5))

    def generate(latents, axes):
        with seamless(pipe, axes):
            return pipe(PROMPT, width=96, height=64, num_inference_steps=2, latents=latents.clone(),
                        output_type="np").images[0]

    rolled_x = torch.roll(noise, shifts=4, dims=3)
    assert np.allclose(generate(rolled_x, "x"), np.roll(generate(noise, "x"), 32, axis=1), atol=1e-4)
    rolled_xy = torch.roll(noise, shifts=(2, 6), dims=(2, 3))
    assert np.allclose(generate(rolled_xy, "xy"), np.roll(generate(noise, "xy"), (16, 48), axis=(0, 1)), atol=1e-4)
    # Without tiling the borders stay where they are, so the rolled image differs.
    assert not np.allclose(generate(rolled_x, ""), np.roll(generate(noise, ""), 32, axis=1), atol=1e-2)


def test_controlnet_convolutions_wrap_too(smoke_engine, control_image):
    request = make_request(width=96, tiling="x", controls=(ControlUnit("depth", control_image),))
    pipe = smoke_engine.pipelines.pipeline(smoke_engine.plan(request))
    seen = []
    hook = pipe.controlnet.register_forward_pre_hook(lambda module, args: seen.append(is_wrapping(module.conv_in)))
    try:
        tiled = smoke_engine.generate(request).images[0]
    finally:
        hook.remove()
    assert seen and all(seen)
    assert edge_contrast(tiled, "x") > 0.65
    assert not any(is_wrapping(conv) for conv in padded_convolutions(pipe))


def test_a_generation_after_tiling_equals_a_fresh_engines(smoke_engine, model_cache, untiled):
    smoke_engine.generate(make_request(tiling="xy"))
    after = smoke_engine.generate(make_request()).images[0]
    assert np.array_equal(after, untiled)
    fresh = Engine(model_cache).generate(make_request()).images[0]
    assert np.array_equal(fresh, untiled)
    pipe = smoke_engine.pipelines.current_base
    assert not any(is_wrapping(conv) for conv in padded_convolutions(pipe))


def test_tiling_is_undone_after_cancel_and_after_errors(smoke_engine, untiled):
    token = CancelToken()

    def cancel_at_first_step(progress):
        token.cancel()

    with pytest.raises(Cancelled):
        smoke_engine.generate(make_request(tiling="xy"), cancel_at_first_step, token)

    def fail(progress):
        raise ValueError("the progress consumer broke")

    with pytest.raises(ValueError):
        smoke_engine.generate(make_request(tiling="x"), fail)
    assert np.array_equal(smoke_engine.generate(make_request()).images[0], untiled)


def test_a_size_off_the_unets_grid_is_noted(smoke_engine):
    # The smoke UNet halves the latent once: sizes in multiples of 16 pixels wrap exactly.
    assert not any("seamless" in note for note in smoke_engine.generate(make_request(tiling="x")).notes)
    odd = smoke_engine.generate(make_request(width=72, tiling="x")).notes
    assert any("multiples of 16 pixels" in note and "72×64" in note for note in odd)
    assert not any("seamless" in note for note in smoke_engine.generate(make_request(width=72, tiling="y")).notes)


def test_unknown_tiling_is_refused_before_loading(smoke_engine):
    loads = list(smoke_engine.loads)
    with pytest.raises(DiffusionError, match="Tiling 'z'"):
        smoke_engine.generate(make_request(tiling="z"))
    assert smoke_engine.loads == loads


def test_sdxl_tiles_too(smoke_engine):
    plain = smoke_engine.generate(make_request(model="smoke-sdxl")).images[0]
    tiled = smoke_engine.generate(make_request(model="smoke-sdxl", tiling="x")).images[0]
    assert edge_contrast(plain, "x") < 0.55
    assert edge_contrast(tiled, "x") > 0.65
