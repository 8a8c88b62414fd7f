# SPDX-License-Identifier: GPL-3.0-or-later
import numpy as np
import pytest


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
