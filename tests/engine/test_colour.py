# SPDX-License-Identifier: GPL-3.0-or-later
"""engine.colour against sd-webui-deforum's own functions.

The reference bytes in tests/engine/data/deforum_colour/ were made by
scripts/deforum_colour_reference.py, which runs Deforum's maintain_colors (skimage's
match_histograms), unsharp_mask, add_noise (torch's generator) and render.py's own lines in a
side environment. Deforum's frames are BGR; the data are stored RGB.
"""
import threading
from pathlib import Path

import numpy as np
import pytest

from engine.colour import (ColourMode, FrameAdjustments, add_noise, adjust, adjust_bytes, adjust_contrast,
                           colour_reference, match_colours, matched_bytes, noise_image, perlin_envelope, unsharp_mask)
from engine.errors import DiffusionError

DATA = Path(__file__).parent / "data" / "deforum_colour"


@pytest.fixture(scope="module")
def deforum():
    """name -> the arrays of one reference file."""
    return {path.stem: dict(np.load(path)) for path in DATA.glob("*.npz")}


def floats(image8: np.ndarray) -> np.ndarray:
    return image8.astype(np.float32) / 255


def bytes_of(image: np.ndarray) -> np.ndarray:
    """The 8-bit values of one of our results, which must lie on the 8-bit grid."""
    assert image.dtype == np.float32 and image.ndim == 3 and image.shape[2] == 3
    scaled = image.astype(np.float64) * 255
    assert np.abs(scaled - np.rint(scaled)).max() < 1e-3
    return np.rint(scaled).astype(np.uint8)


def draws_of(arrays: dict, prefix: str) -> tuple[np.ndarray, list[np.ndarray]]:
    """Deforum's normal draws (reordered to RGB planes) and its Perlin gradient draws per octave."""
    white = np.ascontiguousarray(arrays[f"{prefix}_white"][::-1])
    octaves = sorted((key for key in arrays if key.startswith(f"{prefix}_draws_")), key=lambda k: int(k.split("_")[-1]))
    return white, [arrays[key] for key in octaves]


def blend(image8: np.ndarray, noise8: np.ndarray, amount: float) -> np.ndarray:
    """What Deforum's add_noise does with its noise picture (cv2.addWeighted, as it calls it)."""
    import cv2

    return cv2.addWeighted(image8, 1 - amount, noise8, amount, 0)


# --- Colour coherence -------------------------------------------------------------------------

@pytest.mark.parametrize("mode", ["LAB", "HSV", "RGB"])
@pytest.mark.parametrize("reference", ["reference", "sparse_reference"])
def test_colour_matching_equals_deforums_maintain_colors(deforum, mode, reference):
    data = deforum["colours"]
    matched = match_colours(floats(data["image"]), floats(data[reference]), ColourMode(mode))
    expected = data[f"match_{mode}" + ("_sparse" if reference == "sparse_reference" else "")]
    np.testing.assert_array_equal(bytes_of(matched), expected)
    assert not np.array_equal(expected, data["image"])  # the match did change the frame
    # The bytes an animation frame is written with, matched without the float round trip.
    bytes_matched = matched_bytes(floats(data["image"]), floats(data[reference]), ColourMode(mode))
    assert bytes_matched.dtype == np.uint8
    np.testing.assert_array_equal(bytes_matched, expected)


def test_a_prepared_reference_matches_as_the_image_does(deforum):
    data = deforum["colours"]
    prepared = colour_reference(floats(data["reference"]))
    for mode in (ColourMode.LAB, ColourMode.HSV, ColourMode.RGB):
        np.testing.assert_array_equal(match_colours(floats(data["image"]), prepared, mode),
                                      match_colours(floats(data["image"]), floats(data["reference"]), mode))


def test_histograms_of_huge_frames_count_every_pixel():
    """OpenCV's calcHist counts in float32, exact below 2**24 (a 4096x4096 frame)."""
    from engine.colour import _histograms

    frame = np.zeros((4097, 4097, 3), np.uint8)
    frame[0, :2] = 7
    counts = _histograms(frame)
    assert (counts[:, 0] == 4097 * 4097 - 2).all() and (counts[:, 7] == 2).all()


def test_no_colour_coherence_only_rounds_to_8_bits():
    image = np.random.default_rng(1).random((8, 10, 3), dtype=np.float32)
    out = match_colours(image, np.zeros((4, 4, 3), np.float32), ColourMode.NONE)
    np.testing.assert_array_equal(bytes_of(out), np.rint(image * 255).astype(np.uint8))


@pytest.mark.parametrize("text, mode", [("LAB", ColourMode.LAB), ("Match Frame 0 HSV", ColourMode.HSV),
                                        ("rgb", ColourMode.RGB), ("None", ColourMode.NONE)])
def test_deforums_colour_coherence_names(text, mode):
    assert ColourMode.parse(text) is mode


def test_colour_coherence_from_a_video_or_image_is_not_a_mode():
    with pytest.raises(DiffusionError, match="Video Input"):
        ColourMode.parse("Video Input")


# --- Contrast -----------------------------------------------------------------------------------

def test_contrast_equals_deforums_line_up_to_one(deforum):
    data = deforum["contrast"]
    for index, contrast in enumerate(data["contrasts"]):
        if contrast <= 1:
            out = adjust_contrast(floats(data["image"]), float(contrast))
            np.testing.assert_array_equal(bytes_of(out), data[f"contrast_{index}"], err_msg=f"contrast {contrast}")


def test_contrast_above_one_saturates_where_deforum_wraps_round(deforum):
    data = deforum["contrast"]
    index = int(np.flatnonzero(data["contrasts"] > 1)[0])
    contrast = float(data["contrasts"][index])
    out = bytes_of(adjust_contrast(floats(data["image"]), contrast))
    past_white = np.round(data["image"] * contrast) > 255
    assert past_white.any()
    np.testing.assert_array_equal(out[~past_white], data[f"contrast_{index}"][~past_white])
    assert (out[past_white] == 255).all()
    assert (data[f"contrast_{index}"][past_white] < 255).all()  # Deforum's wrapped bytes


# --- Anti-blur ------------------------------------------------------------------------------------

def test_unsharp_mask_equals_deforums(deforum):
    data = deforum["unsharp"]
    checked = 0
    for index, (kernel, sigma, amount, threshold) in enumerate(data["settings"]):
        if threshold == 0:
            out = unsharp_mask(floats(data["image"]), int(kernel), sigma, amount, threshold)
            np.testing.assert_array_equal(bytes_of(out), data[f"unsharp_{index}"],
                                          err_msg=f"kernel {kernel}, sigma {sigma}, amount {amount}")
            assert not np.array_equal(data[f"unsharp_{index}"], data["image"])
            checked += 1
    assert checked == 5


def test_unsharp_threshold_keeps_pixels_close_to_their_blur(deforum):
    """Deforum's |image - blurred| wraps in uint8 where the blur is brighter; ours is the true
    difference: pixels within `threshold` of their blur keep their value, the others are
    sharpened as with no threshold."""
    data = deforum["unsharp"]
    with_threshold = next(i for i, s in enumerate(data["settings"]) if s[3] > 0)
    without = next(i for i, s in enumerate(data["settings"])
                   if s[3] == 0 and np.array_equal(s[:3], data["settings"][with_threshold][:3]))
    kernel, sigma, amount, threshold = data["settings"][with_threshold]
    image, blurred = data["image"].astype(int), data[f"blurred_{with_threshold}"].astype(int)

    out = bytes_of(unsharp_mask(floats(data["image"]), int(kernel), sigma, amount, threshold))
    close = np.abs(image - blurred) < threshold
    np.testing.assert_array_equal(out, np.where(close, data["image"], data[f"unsharp_{without}"]))
    # Where the pixel is at least as bright as its blur, Deforum's mask is the true one.
    brighter = image >= blurred
    np.testing.assert_array_equal(out[brighter], data[f"unsharp_{with_threshold}"][brighter])
    assert (close & ~brighter).any()  # and there are pixels where the two differ


# --- Noise --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("case", ["uniform", "perlin", "perlin_stretched"])
def test_noise_equals_deforums_given_its_draws(deforum, case):
    data = deforum["noise"]
    amount, _, perlin_w, perlin_h, octaves, persistence = data[f"{case}_settings"]
    white, draws = draws_of(data, case)
    height, width = data[f"{case}_image"].shape[:2]
    envelope = None
    if draws:
        envelope = perlin_envelope(white.shape[1], white.shape[2], perlin_w, perlin_h, int(octaves), persistence, draws)
        np.testing.assert_allclose(envelope, (data[f"{case}_octaves"] + 1) / 2, rtol=0, atol=1e-6)
    out = blend(data[f"{case}_image"], noise_image(white, envelope, height, width), float(amount))
    difference = np.abs(out.astype(int) - data[f"{case}_out"])
    assert difference.max() <= 1 and (difference == 0).mean() > 0.999


def byte_distance(a: np.ndarray, b: np.ndarray) -> float:
    """Largest gap between the cumulative distributions of two byte pictures (Kolmogorov-Smirnov)."""
    cumulative = [np.cumsum(np.bincount(x.ravel(), minlength=256)) / x.size for x in (a, b)]
    return float(np.abs(cumulative[0] - cumulative[1]).max())


def patchiness(picture: np.ndarray) -> float:
    """How much the noise's strength varies between 8x8 blocks (the Perlin envelope's work)."""
    blocks = (picture.astype(np.float32) - 127.5).reshape(16, 8, 16, 8, 3).std(axis=(1, 3, 4))
    return float(blocks.std() / blocks.mean())


@pytest.mark.parametrize("kind", ["uniform", "perlin"])
def test_noise_from_our_generator_is_distributed_as_deforums(deforum, kind):
    """Pure noise pictures (amount 1): ours from seeds 1 and 2, Deforum's from torch (seed 99).
    Deforum's uniform and Perlin pictures are 0.16 apart, and 0.03 and 0.22 patchy."""
    theirs = deforum["noise"][f"picture_{kind}"]
    for seed in (1, 2):
        ours = bytes_of(add_noise(np.full((128, 128, 3), 90 / 255, np.float32), 1.0, seed, kind))
        assert byte_distance(ours, theirs) < 0.02
        assert abs(float(ours.std()) - float(theirs.std())) < 2
        assert abs(patchiness(ours) - patchiness(theirs)) < 0.05


def test_noise_is_reproducible_from_the_seed():
    image = np.random.default_rng(3).random((96, 128, 3), dtype=np.float32)
    first = add_noise(image, 0.2, 42)
    np.testing.assert_array_equal(first, add_noise(image, 0.2, 42))
    assert not np.array_equal(first, add_noise(image, 0.2, 43))
    # Only the low 32 bits count, as in torch's generator; the high half of them is used too.
    np.testing.assert_array_equal(first, add_noise(image, 0.2, 42 + (1 << 32)))
    assert not np.array_equal(add_noise(image, 0.2, 1 << 31), add_noise(image, 0.2, 0))
    # OpenCV's generator is per thread: the job's worker thread gets the same noise.
    result = {}
    worker = threading.Thread(target=lambda: result.setdefault("noise", add_noise(image, 0.2, 42)))
    worker.start()
    worker.join()
    np.testing.assert_array_equal(result["noise"], first)


def test_zero_noise_leaves_the_frame_as_it_was():
    image = floats(np.random.default_rng(4).integers(0, 256, (64, 64, 3), dtype=np.uint8))
    np.testing.assert_array_equal(add_noise(image, 0.0, 5), image)


# --- All steps in Deforum's order ---------------------------------------------------------------

def chain_settings(values: np.ndarray) -> tuple[FrameAdjustments, float]:
    mode, contrast, kernel, sigma, amount, threshold, noise, seed = values
    adjustments = FrameAdjustments(ColourMode(str(mode)), float(contrast), int(kernel), float(sigma), float(amount),
                                   float(threshold), noise=0.0, seed=int(seed))
    return adjustments, float(noise)


def test_adjust_equals_deforums_render_block(deforum):
    """render.py's lines from colour matching to noising, run as written; where Deforum noised,
    our steps before the noise are given its draws."""
    data = deforum["chain"]
    cases = sorted({key.split("_")[1] for key in data if key.startswith("chain_")})
    assert len(cases) == 4
    for case in cases:
        adjustments, noise = chain_settings(data[f"chain_{case}_settings"])
        from_floats = bytes_of(adjust(floats(data["image"]), floats(data["reference"]), adjustments))
        # The job's path: the 8-bit frame as it is, no floats on the way.
        from_bytes = adjust_bytes(data["image"], floats(data["reference"]), adjustments)
        for path, out in (("floats", from_floats), ("bytes", from_bytes)):
            if noise > 0:
                white, draws = draws_of(data, f"chain_{case}")
                envelope = perlin_envelope(64, 64, 8, 8, 4, 0.5, draws)
                out = blend(out, noise_image(white, envelope, 64, 64), noise)
            np.testing.assert_array_equal(out, data[f"chain_{case}_out"], err_msg=f"case {case}, {path}")


def test_adjust_bytes_takes_8_bit_frames_only_and_gives_a_new_one(deforum):
    frame = deforum["chain"]["image"]
    assert frame.dtype == np.uint8
    nothing = FrameAdjustments(colour_mode=ColourMode.NONE, amount=0.0, noise=0.0)
    out = adjust_bytes(frame, None, nothing)
    np.testing.assert_array_equal(out, frame)
    out[0, 0] ^= 1
    assert not np.array_equal(out, frame)  # the frame given is left as it was
    for wrong in (floats(frame), frame[..., :2], frame.astype(np.uint16)):
        with pytest.raises(DiffusionError, match="8-bit frame"):
            adjust_bytes(wrong, None, nothing)


def test_adjust_noises_last_with_its_seed(deforum):
    data = deforum["chain"]
    image, reference = floats(data["image"]), colour_reference(floats(data["reference"]))
    quiet = FrameAdjustments(contrast=0.9, amount=0.3, noise=0.0, seed=8)
    noisy = FrameAdjustments(contrast=0.9, amount=0.3, noise=0.1, seed=8)
    np.testing.assert_array_equal(adjust(image, reference, noisy), add_noise(adjust(image, reference, quiet), 0.1, 8))


def test_adjust_without_a_reference_skips_colour_matching(deforum):
    data = deforum["chain"]
    settings = dict(contrast=0.8, noise=0.0)
    np.testing.assert_array_equal(adjust(floats(data["image"]), None, FrameAdjustments(**settings)),
                                  adjust(floats(data["image"]), None,
                                         FrameAdjustments(colour_mode=ColourMode.NONE, **settings)))


# --- Settings a person can get wrong ---------------------------------------------------------------

@pytest.mark.parametrize("settings, message", [
    (dict(kernel=4), "odd"), (dict(kernel=0, sigma=0.0), "sigma"), (dict(contrast=-0.5), "Contrast"),
    (dict(amount=-0.1), "amount"), (dict(threshold=-1.0), "threshold"), (dict(noise=1.5), "noise amount"),
    (dict(noise_type="simplex"), "noise type"), (dict(perlin_w=0.5), "Perlin"), (dict(colour_mode="Image"), "Image"),
])
def test_bad_settings_fail_when_made(settings, message):
    with pytest.raises(DiffusionError, match=message):
        FrameAdjustments(**settings)


def test_perlin_cells_must_fit_the_frame():
    adjustments = FrameAdjustments(perlin_w=3, perlin_octaves=2)  # 6 cells down
    adjustments.check_size(384, 512)  # 384 rows: 64 pixels a cell
    with pytest.raises(DiffusionError, match="6 cells down"):
        adjustments.check_size(512, 512)
    with pytest.raises(DiffusionError, match="too small"):
        FrameAdjustments().check_size(48, 512)
    with pytest.raises(DiffusionError, match="6 cells down"):
        add_noise(np.zeros((512, 512, 3), np.float32), 0.1, 1, "perlin", perlin_w=3, perlin_octaves=2)


@pytest.mark.parametrize("image", [np.zeros((8, 8), np.float32), np.zeros((8, 8, 4), np.float32),
                                   np.zeros((8, 8, 3), np.uint8)])
def test_images_must_be_float_rgb(image):
    with pytest.raises(DiffusionError):
        adjust_contrast(image, 1.0)
