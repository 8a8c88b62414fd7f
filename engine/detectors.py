# SPDX-License-Identifier: GPL-3.0-or-later
"""Conditions from the person's own images (a photo, a sketch, a render) via controlnet_aux.

Three detectors need no weights and always work offline: Canny, standard line art and
content shuffle. The others need annotator weights from the Hugging Face hub (most from
lllyasviel/Annotators, segmentation from openmmlab/upernet-convnext-small: controlnet_aux
0.0.10 has no ADE20K segmenter, and UperNet is what the diffusers docs use for the seg
ControlNet). They are used from the local Hugging Face cache; downloading needs
`allow_online` (Blender's "Allow Online Access"), and without the files we refuse with a
message that says so, before importing torch or controlnet_aux.

Every detector returns an image the size of its input (controlnet_aux works at a multiple
of 64; we resize back; Canny runs at the input's size), HxWx3 uint8, in the convention its
ControlNet expects.
"""
from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np

from .errors import DiffusionError

__all__ = ["Detector", "DETECTORS", "detect", "missing_weights"]

ANNOTATORS = "lllyasviel/Annotators"
UPERNET = "openmmlab/upernet-convnext-small"


@dataclass(frozen=True)
class Detector:
    """One way of turning an image into a condition.

    kind: the ControlUnit kind its output feeds ("depth", "canny", ...).
    repo, files: the hub weights it needs (empty: none).
    """
    name: str
    kind: str
    label: str
    repo: str = ""
    files: tuple[str, ...] = ()

    @property
    def needs_weights(self) -> bool:
        return bool(self.files)


DETECTORS: dict[str, Detector] = {d.name: d for d in (
    Detector("canny", "canny", "Canny edges"),
    Detector("lineart_standard", "lineart", "Line art (standard, no weights)"),
    Detector("shuffle", "shuffle", "Content shuffle"),
    Detector("depth_midas", "depth", "Depth (MiDaS)", ANNOTATORS, ("dpt_hybrid-midas-501f0c75.pt",)),
    Detector("openpose", "openpose", "OpenPose (body, hands, face)", ANNOTATORS,
             ("body_pose_model.pth", "hand_pose_model.pth", "facenet.pth")),
    Detector("normal_bae", "normal", "Normal map (BAE)", ANNOTATORS, ("scannet.pt",)),
    Detector("softedge_hed", "softedge", "Soft edges (HED)", ANNOTATORS, ("ControlNetHED.pth",)),
    Detector("mlsd", "mlsd", "Straight lines (M-LSD)", ANNOTATORS, ("mlsd_large_512_fp32.pth",)),
    Detector("lineart", "lineart", "Line art (learned)", ANNOTATORS, ("sk_model.pth", "sk_model2.pth")),
    Detector("segmentation", "segmentation", "Segmentation (ADE20K, UperNet)", UPERNET,
             ("config.json", "model.safetensors", "preprocessor_config.json")),
)}


def missing_weights(name: str, cache_dir: str | None = None) -> list[str]:
    """The weight files detector `name` needs that are not in the local Hugging Face cache."""
    detector = _detector(name)
    if not detector.needs_weights:
        return []
    from huggingface_hub import try_to_load_from_cache
    return [file for file in detector.files
            if not isinstance(try_to_load_from_cache(detector.repo, file, cache_dir=cache_dir), str)]


def detect(
    name: str,
    image: np.ndarray,
    *,
    allow_online: bool = False,
    cache_dir: str | None = None,
    canny_low: int = 100,
    canny_high: int = 200,
    seed: int = 0,
    device: str = "cpu",
) -> np.ndarray:
    """Turn `image` (HxWx3 uint8 RGB) into a condition with detector `name` (see DETECTORS).

    allow_online: download missing weights (else they must be in the local cache).
    canny_low, canny_high: Canny's thresholds. seed: content shuffle's random flow.
    Returns HxWx3 uint8 the size of `image`.
    """
    detector = _detector(name)
    image = _checked(image)
    missing = missing_weights(name, cache_dir)
    if missing and not allow_online:
        raise DiffusionError(
            f"The {detector.label} detector needs the annotator weights {detector.repo} "
            f"({', '.join(missing)}), which are not on this computer",
            "turn on online access (Preferences > System > Network > Allow Online Access) to "
            "download them, or use a detector that needs no weights (Canny, standard line art)")
    height, width = image.shape[:2]
    resolution = min(height, width)
    with _hub_errors(detector):
        if name == "canny":
            # CannyDetector's own work is this call on the RGB image; it would first resample
            # the image to a multiple of 64 pixels and back, blurring the one-pixel edges.
            import cv2
            result = cv2.Canny(image, int(canny_low), int(canny_high))
        elif name == "lineart_standard":
            result = _aux("lineart_standard", "LineartStandardDetector")()(
                image, detect_resolution=resolution, output_type="np")
        elif name == "shuffle":
            with _seeded(seed):  # controlnet_aux draws its flow from numpy's global generator
                result = _aux("shuffle", "ContentShuffleDetector")()(
                    image, detect_resolution=resolution, image_resolution=resolution, output_type="np")
        elif name == "segmentation":
            result = _segment(image, cache_dir, not allow_online, device)
        else:
            result = _weighted(name, detector, image, resolution, cache_dir, not allow_online, device)
    return _fitted(np.asarray(result), width, height)


def _detector(name: str) -> Detector:
    if name not in DETECTORS:
        raise ValueError(f"unknown detector {name!r}; known: {', '.join(DETECTORS)}")
    return DETECTORS[name]


def _checked(image: np.ndarray) -> np.ndarray:
    image = np.asarray(image)
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] not in (3, 4) or min(image.shape[:2]) < 1:
        raise DiffusionError(
            f"A detector needs an RGB image (HxWx3 bytes), got {image.dtype} {image.shape}",
            "use an 8-bit RGB image")
    return np.ascontiguousarray(image[:, :, :3])


def _aux(module: str, cls: str) -> Callable:
    """A controlnet_aux detector class, with a clear error when the package is missing."""
    try:
        package = __import__(f"controlnet_aux.{module}", fromlist=[cls])
    except ImportError as error:
        raise DiffusionError("controlnet_aux is not installed",
                             "install the dependencies in the add-on's preferences") from error
    return getattr(package, cls)


def _weighted(name: str, detector: Detector, image: np.ndarray, resolution: int,
              cache_dir: str | None, local_only: bool, device: str) -> np.ndarray:
    classes = {"depth_midas": ("midas", "MidasDetector"), "openpose": ("open_pose", "OpenposeDetector"),
               "normal_bae": ("normalbae", "NormalBaeDetector"), "softedge_hed": ("hed", "HEDdetector"),
               "mlsd": ("mlsd", "MLSDdetector"), "lineart": ("lineart", "LineartDetector")}
    model = _aux(*classes[name]).from_pretrained(detector.repo, cache_dir=cache_dir, local_files_only=local_only)
    model = model.to(device)
    options = {"detect_resolution": resolution, "image_resolution": resolution, "output_type": "np"}
    if name == "openpose":
        options.update(include_body=True, include_hand=True, include_face=True)
    return model(image, **options)


def _segment(image: np.ndarray, cache_dir: str | None, local_only: bool, device: str) -> np.ndarray:
    """ADE20K labels by UperNet, drawn in the ADE20K palette."""
    import torch
    from transformers import AutoImageProcessor, UperNetForSemanticSegmentation

    from .segmentation import labels_to_control

    processor = AutoImageProcessor.from_pretrained(UPERNET, cache_dir=cache_dir, local_files_only=local_only)
    model = UperNetForSemanticSegmentation.from_pretrained(
        UPERNET, cache_dir=cache_dir, local_files_only=local_only).to(device)
    inputs = processor(images=image, return_tensors="pt").to(device)
    with torch.no_grad():
        outputs = model(**inputs)
    labels = processor.post_process_semantic_segmentation(outputs, target_sizes=[image.shape[:2]])[0]
    return labels_to_control(labels.cpu().numpy().astype(np.int64))


def _fitted(result: np.ndarray, width: int, height: int) -> np.ndarray:
    import cv2
    if result.ndim == 2:
        result = result[:, :, None]
    if result.shape[2] == 1:
        result = np.repeat(result, 3, axis=2)
    result = np.ascontiguousarray(result[:, :, :3], dtype=np.uint8)
    if result.shape[:2] != (height, width):
        result = cv2.resize(result, (width, height), interpolation=cv2.INTER_LINEAR)
    return result


@contextlib.contextmanager
def _seeded(seed: int) -> Iterator[None]:
    """numpy's global generator seeded for the block and put back after it."""
    state = np.random.get_state()
    np.random.seed(seed)
    try:
        yield
    finally:
        np.random.set_state(state)


@contextlib.contextmanager
def _hub_errors(detector: Detector) -> Iterator[None]:
    """Download and cache failures as errors a person can act on."""
    from .downloads import hub_errors

    with hub_errors(f"The {detector.label} detector's repository {detector.repo}",
                    "check the internet connection, or put the files in the Hugging Face cache"):
        try:
            yield
        except OSError as error:
            # transformers and controlnet_aux turn a hub failure into an OSError of their own
            # ("can't load ..."); its cause, when there is one, is the hub's error.
            raise (error.__cause__ or error) from None
