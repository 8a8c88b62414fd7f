# SPDX-License-Identifier: GPL-3.0-or-later
"""Make tests/engine/data/deforum_colour/*.npz with sd-webui-deforum's own code, the reference
tests/engine/test_colour.py holds engine/colour.py to.

Deforum (AGPL-3.0) is never part of this repository: its files are copied at run time from a
snapshot into a temporary folder and imported from there; only Stable Diffusion web UI's own
modules, which cannot be installed, are stubbed (`modules.shared`, `modules.modelloader`).
What runs is Deforum's maintain_colors (colors.py), unsharp_mask (image_sharpening.py),
add_noise and its Perlin noise (noise.py, sample_to_cv2 from animation.py), its contrast line
and, for the order of the steps, the block of render.py that applies them, read from the
file and executed as it is written.

It needs skimage (Deforum's histogram matching) and torch (its noise), so it runs in a side
environment, outside the repository (web UI pins scikit-image 0.21.0):

    python3.11 -m venv /work/side-colour
    /work/side-colour/bin/pip install "numpy<2" opencv-python-headless==4.11.0.86 \\
        scikit-image==0.21.0 torch==2.13.0+cpu einops numexpr pillow "setuptools<81"
    /work/side-colour/bin/python scripts/deforum_colour_reference.py \\
        --deforum <git dir or checkout of github.com/deforum-art/sd-webui-deforum>

(pkg_resources, from setuptools, is imported by colors.py; torch 2.13.0+cpu is the CPU build.)
The data were made from Deforum at commit 322426851408ebca2cd49492bfeb1ec86e1dc869.

Images are made by formula, stored as Deforum sees them (8-bit), RGB: Deforum's frames are
BGR, so they are reversed on the way in and out, as render.py's cv2 conversions do.
"""
from __future__ import annotations

import argparse
import importlib
import subprocess
import sys
import tempfile
import textwrap
import types
from pathlib import Path

import numpy as np

OUT = Path(__file__).resolve().parents[1] / "tests" / "engine" / "data" / "deforum_colour"
HELPERS = ["colors.py", "noise.py", "image_sharpening.py", "animation.py", "prompt.py", "general_utils.py",
           "render.py"]

STUBS = {
    "modules/__init__.py": "",
    "modules/shared.py": textwrap.dedent("""\
        # Stand-in for Stable Diffusion web UI's settings: Deforum only reads options here.
        class _Options:
            data = {}
        opts = _Options()
        state = None
        cmd_opts = None
        sd_model = None
        """),
    "modules/modelloader.py": "def load_file_from_url(*args, **kwargs):\n    raise RuntimeError('not here')\n",
}


# --- Deforum's code, from a snapshot --------------------------------------------------------

def read_deforum(source: Path, revision: str, path: str) -> str:
    if (source / "HEAD").is_file() and not (source / ".git").exists():  # a bare git directory
        return subprocess.run(["git", "--git-dir", str(source), "show", f"{revision}:{path}"], check=True,
                              capture_output=True, text=True).stdout
    return (source / path).read_text()


def commit_of(source: Path, revision: str) -> str:
    git_dir = source if (source / "HEAD").is_file() and not (source / ".git").exists() else source / ".git"
    return subprocess.run(["git", "--git-dir", str(git_dir), "rev-parse", revision], check=True,
                          capture_output=True, text=True).stdout.strip()


def load_deforum(source: Path, revision: str, folder: Path) -> dict[str, str]:
    """Copy Deforum's helpers into `folder` (as the package deforum_helpers) and put it on sys.path."""
    helpers = folder / "deforum_helpers"
    helpers.mkdir()
    texts = {}
    for name in HELPERS:
        texts[name] = read_deforum(source, revision, f"scripts/deforum_helpers/{name}")
        if name != "render.py":  # read for its text only: importing it would need all of web UI
            (helpers / name).write_text(texts[name])
    # animation.py imports Deforum's src/py3d_tools.py as a top-level module.
    (folder / "py3d_tools.py").write_text(read_deforum(source, revision, "scripts/deforum_helpers/src/py3d_tools.py"))
    for name, text in STUBS.items():
        (folder / name).parent.mkdir(exist_ok=True)
        (folder / name).write_text(text)
    sys.path.insert(0, str(folder))
    return texts


def render_block(render_py: str, first: str, last: str) -> str:
    """The lines of render.py from the one containing `first` up to (not with) the one with `last`."""
    lines = render_py.splitlines()
    start = next(i for i, line in enumerate(lines) if first in line)
    end = next(i for i, line in enumerate(lines) if i > start and last in line)
    return textwrap.dedent("\n".join(lines[start:end]))


class RecordingTorch:
    """Stands in for the torch module inside Deforum's noise.py: randn and rand are torch's,
    and what they drew from Deforum's generator is kept, so tests can give our code the same
    draws; everything else is torch's own."""

    def __init__(self, torch: types.ModuleType) -> None:
        self._torch = torch
        self.clear()

    def __getattr__(self, name: str):
        return getattr(self._torch, name)

    def clear(self) -> None:
        self.normal_draws: list[np.ndarray] = []
        self.uniform_draws: list[np.ndarray] = []

    def randn(self, *args, **kwargs):
        drawn = self._torch.randn(*args, **kwargs)
        self.normal_draws.append(drawn.numpy().copy())
        return drawn

    def rand(self, *args, **kwargs):
        drawn = self._torch.rand(*args, **kwargs)
        self.uniform_draws.append(drawn.numpy().copy())
        return drawn


# --- Images by formula -------------------------------------------------------------------------

def frame(height: int, width: int, phase: float) -> np.ndarray:
    """HxWx3 uint8 RGB: waves, a ramp and a checker with hard edges (so the blur has work)."""
    y, x = np.mgrid[0:height, 0:width].astype(np.float64)
    red = 128 + 100 * np.sin(x / 5 + phase) * np.cos(y / 7)
    green = 255 * (x + phase * 10) / (width + 30)
    blue = np.where(((x // 8 + y // 8 + int(phase)) % 2) == 0, 40 + 3 * y, 210 - y)
    return np.clip(np.stack([red, green, blue], axis=2), 0, 255).round().astype(np.uint8)


def few_values(height: int, width: int) -> np.ndarray:
    """A warm reference with few distinct values per channel (gaps in every histogram)."""
    y, x = np.mgrid[0:height, 0:width]
    red = 150 + 20 * ((x // 7) % 4)
    green = 60 + 35 * ((y // 5) % 3)
    blue = 20 + 90 * (((x + y) // 9) % 2)
    return np.stack([red, green, blue], axis=2).astype(np.uint8)


def bgr(rgb: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(rgb[..., ::-1])


# --- The cases -------------------------------------------------------------------------------------

def colour_cases(colors) -> dict[str, np.ndarray]:
    image, reference, sparse = frame(48, 64, 0.0), frame(48, 64, 2.5)[..., [2, 0, 1]], few_values(40, 56)
    data = {"image": image, "reference": reference, "sparse_reference": sparse}
    for mode in ("LAB", "HSV", "RGB"):
        data[f"match_{mode}"] = bgr(colors.maintain_colors(bgr(image), bgr(reference), mode))
        data[f"match_{mode}_sparse"] = bgr(colors.maintain_colors(bgr(image), bgr(sparse), mode))
    return data


def contrast_cases(render_py: str) -> dict[str, np.ndarray]:
    line = render_block(render_py, "contrast_image = (prev_img * contrast)", "# anti-blur")
    image = frame(48, 64, 1.0)
    data = {"image": image, "contrasts": np.array([0.0, 0.5, 0.9, 1.0, 1.3])}
    for index, contrast in enumerate(data["contrasts"]):
        scope = {"np": np, "prev_img": bgr(image), "contrast": float(contrast)}
        exec(line, scope)
        data[f"contrast_{index}"] = bgr(scope["contrast_image"])
    return data


def unsharp_cases(sharpening) -> dict[str, np.ndarray]:
    import cv2

    image = frame(48, 64, 3.0)
    # kernel, sigma, amount, threshold
    settings = np.array([[5, 1.0, 0.1, 0], [3, 0.5, 1.0, 0], [7, 2.0, 0.35, 0], [0, 1.5, 0.2, 0],
                         [5, 1.0, 0.5, 4], [5, 1.0, 0.5, 0]])
    data = {"image": image, "settings": settings}
    for index, (kernel, sigma, amount, threshold) in enumerate(settings):
        kernel = int(kernel)
        data[f"unsharp_{index}"] = bgr(sharpening.unsharp_mask(bgr(image), (kernel, kernel), sigma, amount, threshold))
        data[f"blurred_{index}"] = bgr(cv2.GaussianBlur(bgr(image), (kernel, kernel), sigma))
    return data


def noise_cases(noise, recorder: RecordingTorch) -> dict[str, np.ndarray]:
    import torch

    # name: (height, width, amount, seed, type, perlin_w, perlin_h, octaves, persistence)
    cases = {
        "uniform": (64, 64, 0.065, 7, "uniform", 8, 8, 4, 0.5),
        "perlin": (64, 64, 0.065, 1234, "perlin", 8, 8, 4, 0.5),
        "perlin_stretched": (72, 80, 0.3, 2**32 - 5, "perlin", 2.9, 4, 3, 0.7),
    }
    data = {}
    octaves_sums = []
    perlin = noise.rand_perlin_2d_octaves

    def keep_octaves(*args, **kwargs):  # add_noise looks the function up when it runs
        octaves_sums.append(perlin(*args, **kwargs).numpy().copy())
        return torch.from_numpy(octaves_sums[-1])

    noise.rand_perlin_2d_octaves = keep_octaves
    for name, (height, width, amount, seed, kind, perlin_w, perlin_h, octaves, persistence) in cases.items():
        image = frame(height, width, 0.5)
        recorder.clear()
        out = noise.add_noise(bgr(image), amount, seed, kind, (perlin_w, perlin_h, octaves, persistence))
        data[f"{name}_image"] = image
        data[f"{name}_settings"] = np.array([amount, seed, perlin_w, perlin_h, octaves, persistence])
        data[f"{name}_white"] = recorder.normal_draws[0]
        for octave, drawn in enumerate(recorder.uniform_draws):
            data[f"{name}_draws_{octave}"] = drawn
        data[f"{name}_out"] = bgr(out)
        if kind == "perlin":
            data[f"{name}_octaves"] = octaves_sums[-1]
    noise.rand_perlin_2d_octaves = perlin
    # Pure noise pictures (amount 1) for the statistics of our own generator's noise.
    for kind in ("uniform", "perlin"):
        grey = np.full((128, 128, 3), 90, np.uint8)
        data[f"picture_{kind}"] = bgr(noise.add_noise(grey, 1.0, 99, kind, (8, 8, 4, 0.5)))
    return data


def chain_cases(render_py: str, helpers: dict[str, types.ModuleType],
                recorder: RecordingTorch) -> dict[str, np.ndarray]:
    """render.py's own block from colour matching to noising, run as written."""
    from PIL import Image

    block = render_block(render_py, "# apply color matching", "# use transformed previous frame as init")
    image, reference = frame(64, 64, 4.0), frame(64, 64, 1.5)[..., [1, 2, 0]]
    # colour mode, contrast, kernel, sigma, amount, threshold, noise, seed
    settings = [("LAB", 0.9, 5, 1.0, 0.1, 0, 0.0, 5), ("HSV", 1.0, 3, 0.8, 0.4, 0, 0.0, 6),
                ("RGB", 0.8, 5, 1.0, 0.2, 0, 0.065, 11), ("None", 1.0, 5, 1.0, 0.1, 0, 0.1, 12)]
    data = {"image": image, "reference": reference}
    for index, (mode, contrast, kernel, sigma, amount, threshold, amount_noise, seed) in enumerate(settings):
        anim_args = types.SimpleNamespace(color_coherence=mode, color_force_grayscale=False, noise_type="perlin",
                                          perlin_w=8, perlin_h=8, perlin_octaves=4, perlin_persistence=0.5,
                                          use_noise_mask=False)
        scope = {
            "np": np, "cv2": __import__("cv2"), "Image": Image,
            "anim_args": anim_args, "args": types.SimpleNamespace(use_mask=False, seed=seed, invert_mask=False),
            "root": types.SimpleNamespace(noise_mask=None), "mask_image": None,
            "prev_img": bgr(image), "color_match_sample": bgr(reference),
            "contrast": contrast, "kernel": kernel, "sigma": sigma, "amount": amount, "threshold": threshold,
            "noise": amount_noise, "maintain_colors": helpers["colors"].maintain_colors,
            "unsharp_mask": helpers["image_sharpening"].unsharp_mask, "add_noise": helpers["noise"].add_noise,
        }
        recorder.clear()
        exec(block, scope)
        data[f"chain_{index}_settings"] = np.array([mode, contrast, kernel, sigma, amount, threshold, amount_noise,
                                                    seed], dtype=object).astype(str)
        data[f"chain_{index}_out"] = bgr(scope["noised_image"])
        if amount_noise > 0:  # at 0 Deforum's draws are blended in with weight 0
            data[f"chain_{index}_white"] = recorder.normal_draws[0]
            for octave, drawn in enumerate(recorder.uniform_draws):
                data[f"chain_{index}_draws_{octave}"] = drawn
    return data


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--deforum", type=Path, required=True, help="git dir or checkout of sd-webui-deforum")
    parser.add_argument("--revision", default="HEAD")
    parser.add_argument("--out", type=Path, default=OUT)
    options = parser.parse_args()

    import cv2
    import skimage
    import torch

    with tempfile.TemporaryDirectory() as folder:
        texts = load_deforum(options.deforum, options.revision, Path(folder))
        helpers = {name: importlib.import_module(f"deforum_helpers.{name}")
                   for name in ("colors", "image_sharpening", "noise")}
        recorder = RecordingTorch(torch)
        helpers["noise"].torch = recorder
        made = {
            "colours": colour_cases(helpers["colors"]),
            "contrast": contrast_cases(texts["render.py"]),
            "unsharp": unsharp_cases(helpers["image_sharpening"]),
            "noise": noise_cases(helpers["noise"], recorder),
            "chain": chain_cases(texts["render.py"], helpers, recorder),
        }
    versions = (f"deforum {commit_of(options.deforum, options.revision)}, scikit-image {skimage.__version__}, "
                f"torch {torch.__version__}, opencv {cv2.__version__}, numpy {np.__version__}")
    options.out.mkdir(parents=True, exist_ok=True)
    for name, arrays in made.items():
        np.savez_compressed(options.out / f"{name}.npz", made_with=np.array(versions), **arrays)
        print(f"{name}.npz: {len(arrays)} arrays")
    print(versions)


if __name__ == "__main__":
    main()
