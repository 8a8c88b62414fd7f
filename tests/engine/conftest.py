# SPDX-License-Identifier: GPL-3.0-or-later
import dataclasses
import os

import numpy as np
import pytest

# Child processes (and torch, if nothing imported it yet) start with one thread too.
os.environ.setdefault("OMP_NUM_THREADS", os.environ.get("SCENE_DIFFUSION_TEST_THREADS", "1"))


@pytest.fixture(scope="session", autouse=True)
def one_torch_thread():
    """The smoke models' tiny operations run fastest on one thread. On a machine shared with
    other jobs, two threads wait on each other for a busy core: measured here, 200 small
    convolutions took 0.05 s on one thread and 1.4 to 6.6 s on two.
    SCENE_DIFFUSION_TEST_THREADS sets another count."""
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(int(os.environ.get("SCENE_DIFFUSION_TEST_THREADS", "1")))
    yield
    torch.set_num_threads(previous)


@pytest.fixture(scope="session")
def smoke_engine(model_cache):
    """One engine for the engine tests (models stay loaded between them, as in Blender)."""
    from engine import Engine
    return Engine(model_cache)


@pytest.fixture
def control_image() -> np.ndarray:
    """A smooth depth-like control image: a bright disc on a dark ramp, 64x96."""
    y, x = np.mgrid[0:64, 0:96]
    ramp = (x / 95.0 * 120).astype(np.uint8)
    disc = ((x - 48) ** 2 + (y - 32) ** 2) < 20 ** 2
    image = np.where(disc, 230, ramp).astype(np.uint8)
    return np.repeat(image[..., None], 3, axis=2)


@pytest.fixture
def init_image() -> np.ndarray:
    """A smooth colour image, HxWx3 float32 0..1, 64x64."""
    y, x = np.mgrid[0:64, 0:64] / 63.0
    return np.stack([x, y, 1.0 - x * y], axis=2).astype(np.float32)


@pytest.fixture
def mask() -> np.ndarray:
    """A centred square to repaint, HxW float32, 64x64."""
    mask = np.zeros((64, 64), dtype=np.float32)
    mask[16:48, 16:48] = 1.0
    return mask


@pytest.fixture
def edges() -> np.ndarray:
    """A Canny-like control image: white lines on black, 64x64x3 uint8."""
    image = np.zeros((64, 64, 3), dtype=np.uint8)
    image[20, 8:56] = image[44, 8:56] = 255
    image[8:56, 20] = image[8:56, 44] = 255
    return image


# (unit, field, value) for a request whose unit 0 acts on [0, 0.75] of the steps and unit 1 on
# [0.25, 1] (tests/engine/test_modes.py's two_units): each moves a start or an end by a quarter,
# so with 4 or more steps at least one step gets its ControlNet where it did not, or not where it did.
UNIT_CHANGES = [(0, "scale", 0.4), (0, "guidance_start", 0.25), (0, "guidance_end", 1.0),
                (1, "scale", 0.2), (1, "guidance_start", 0.5), (1, "guidance_end", 0.75)]


@pytest.fixture
def each_unit_change():
    """Runs a request on an engine and again with each UNIT_CHANGES entry (those for its units);
    returns {"unit 0 scale": whether the image changed, ...}."""
    def run(engine, request) -> dict[str, bool]:
        base = engine.generate(request).images[0]
        assert np.array_equal(engine.generate(request).images[0], base)  # so a difference is the change's
        changed = {}
        for unit, field, value in UNIT_CHANGES:
            if unit < len(request.controls):
                units = list(request.controls)
                units[unit] = dataclasses.replace(units[unit], **{field: value})
                image = engine.generate(dataclasses.replace(request, controls=tuple(units))).images[0]
                changed[f"unit {unit} {field}"] = not np.array_equal(image, base)
        return changed

    return run


@pytest.fixture
def cancel_at_step_two():
    """Runs a request on an engine, cancelling at step 2; returns (steps seen, VAE decodes)."""
    from engine import CancelToken, Cancelled

    def run(engine, request) -> tuple[list[int], int]:
        engine.generate(request)  # loaded, so the VAE patched below is the one every variant uses
        vae = engine.pipelines.current_base.vae
        decodes = []
        original_decode = vae.decode

        def counting_decode(*args, **kwargs):
            decodes.append(1)
            return original_decode(*args, **kwargs)

        token = CancelToken()
        steps_seen = []

        def on_progress(progress):
            steps_seen.append(progress.step)
            if progress.step == 2:
                token.cancel()

        vae.decode = counting_decode
        try:
            with pytest.raises(Cancelled):
                engine.generate(request, on_progress, token)
        finally:
            del vae.decode
        return steps_seen, len(decodes)

    return run
