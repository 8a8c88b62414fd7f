# SPDX-License-Identifier: GPL-3.0-or-later
"""Loaded pipelines, kept between generations.

One base model is kept loaded at a time; every pipeline variant (text-to-image,
image-to-image, inpainting, each with or without ControlNets) is made of its modules,
like `from_pipe`, sharing the weights instead of loading them again. `loads` records
every folder or file read from disk, so callers (and tests) can see that switching modes,
or a second generation, loaded nothing.

Models are checked on disk when they are planned (see engine.weights), before the loaded
model is let go, so a damaged file leaves the engine with the model it had. LoRAs live
in the base pipeline as adapters (engine.loras) and the scheduler is set per generation,
so neither reloads anything.
"""
from __future__ import annotations

import contextlib
import inspect
import logging
from dataclasses import dataclass

from .devices import Placement, torch_dtype
from .errors import DiffusionError
from .embeddings import Embeddings, EmbeddingSource
from .loras import LoraAdapters, LoraSource
from .models import ModelSource, check_controlnets, union_mode
from .references import AdapterSource, read_adapter
from .requests import MODES

# The diffusers class for each (family, kind of ControlNets, mode). "single" are classic
# ControlNets (one or several); "union" are union ControlNets (one model, several modes).
PIPELINE_CLASSES = {
    ("sd15", "none", "txt2img"): "StableDiffusionPipeline",
    ("sd15", "none", "img2img"): "StableDiffusionImg2ImgPipeline",
    ("sd15", "none", "inpaint"): "StableDiffusionInpaintPipeline",
    ("sd15", "single", "txt2img"): "StableDiffusionControlNetPipeline",
    ("sd15", "single", "img2img"): "StableDiffusionControlNetImg2ImgPipeline",
    ("sd15", "single", "inpaint"): "StableDiffusionControlNetInpaintPipeline",
    ("sdxl", "none", "txt2img"): "StableDiffusionXLPipeline",
    ("sdxl", "none", "img2img"): "StableDiffusionXLImg2ImgPipeline",
    ("sdxl", "none", "inpaint"): "StableDiffusionXLInpaintPipeline",
    ("sdxl", "single", "txt2img"): "StableDiffusionXLControlNetPipeline",
    ("sdxl", "single", "img2img"): "StableDiffusionXLControlNetImg2ImgPipeline",
    ("sdxl", "single", "inpaint"): "StableDiffusionXLControlNetInpaintPipeline",
    ("sdxl", "union", "txt2img"): "StableDiffusionXLControlNetUnionPipeline",
    ("sdxl", "union", "img2img"): "StableDiffusionXLControlNetUnionImg2ImgPipeline",
    ("sdxl", "union", "inpaint"): "StableDiffusionXLControlNetUnionInpaintPipeline",
}


@dataclass(frozen=True)
class Plan:
    """What to run: a base model, a mode, and the ControlNet and condition kind of each
    control unit, in order. Making one refuses ControlNets that cannot run with the base
    (another family, union mixed with single-kind, a kind the union model lacks), so no
    path gets as far as loading them.
    """
    base: ModelSource
    mode: str
    controlnets: tuple[ModelSource, ...] = ()
    kinds: tuple[str, ...] = ()
    loras: tuple[LoraSource, ...] = ()
    embeddings: tuple[EmbeddingSource, ...] = ()
    adapter: AdapterSource | None = None  # the IP-Adapter, loaded once per reference image
    references: int = 0

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, not {self.mode!r}")
        if len(self.kinds) != len(self.controlnets):
            raise ValueError("a Plan needs one condition kind per ControlNet")
        check_controlnets(self.base, self.controlnets, self.kinds)

    @property
    def controls(self) -> str:
        """"none", "single" or "union": which family of diffusers pipelines runs the plan."""
        if not self.controlnets:
            return "none"
        return "union" if self.controlnets[0].union else "single"

    @property
    def shared_union(self) -> bool:
        """One union model serves every unit, each with its own control mode."""
        return self.controls == "union" and len({c.path for c in self.controlnets}) == 1

    @property
    def control_modes(self) -> list[int]:
        """The union model's control mode for each unit (union plans only)."""
        return [union_mode(c, kind) for c, kind in zip(self.controlnets, self.kinds)]

    @property
    def pipeline_class(self) -> str:
        return PIPELINE_CLASSES[(self.base.family, self.controls, self.mode)]


class PipelineCache:
    def __init__(self, placement: Placement) -> None:
        without_progress_monitor()
        self.placement = placement
        self.loads: list[str] = []
        self._base_source: ModelSource | None = None
        self._base = None
        self._controlnets: dict[str, object] = {}
        self._variants: dict[tuple, object] = {}
        self._loras: LoraAdapters | None = None
        self._embeddings: Embeddings | None = None
        self._default_scheduler = None
        self._adapter: tuple[str, int] | None = None  # (file, copies) in the base UNet
        self._adapter_states: dict[str, dict] = {}
        self._encoders: dict[str, object] = {}

    @property
    def current_base(self):
        """The loaded base pipeline, or None."""
        return self._base

    @property
    def default_scheduler(self):
        """The loaded model's own scheduler, as it came with the model."""
        return self._default_scheduler

    @property
    def loras(self) -> LoraAdapters | None:
        """The LoRA adapters of the loaded base model."""
        return self._loras

    def clear(self) -> None:
        self._base_source = None
        self._base = None
        self._controlnets.clear()
        self._variants.clear()
        self._loras = None
        self._embeddings = None
        self._default_scheduler = None
        self._adapter = None
        self._adapter_states.clear()
        self._encoders.clear()

    def pipeline(self, plan: Plan):
        """The pipeline that runs `plan`, sharing the base pipeline's weights, with the plan's
        LoRAs active (and no others)."""
        pipe = self._load_base(plan.base)
        self._loras.apply(plan.loras, self.loads)
        self._embeddings.apply(plan.embeddings, self.loads)  # the variants share its text encoders
        self._apply_adapter(pipe, plan)
        key = (plan.mode, tuple(c.path for c in plan.controlnets))
        if key == ("txt2img", ()):
            return pipe
        if key not in self._variants:
            import diffusers

            cls = getattr(diffusers, plan.pipeline_class)
            extra = {"controlnet": self._controlnet_for(plan)} if plan.controlnets else {}
            variant = _sharing(cls, pipe, **extra)
            variant.set_progress_bar_config(disable=True)
            self._variants[key] = variant
        variant = self._variants[key]
        # The UNet (with the adapter's layers) is shared; the image encoder is a component of each.
        for name in ("image_encoder", "feature_extractor"):
            if hasattr(variant, name) and getattr(variant, name) is not getattr(pipe, name, None):
                variant.register_modules(**{name: getattr(pipe, name, None)})
        return variant

    def adapter_changes(self, plan: Plan) -> bool:
        """Whether running `plan` loads or unloads IP-Adapter layers (which replaces attention processors)."""
        return self._adapter_wanted(plan) != self._adapter and self._base_source == plan.base

    @staticmethod
    def _adapter_wanted(plan: Plan) -> tuple[str, int] | None:
        return (plan.adapter.path, plan.references) if plan.adapter is not None and plan.references else None

    def _apply_adapter(self, pipe, plan: Plan) -> None:
        """The plan's IP-Adapter in the base UNet, one copy per reference image (or none)."""
        wanted = self._adapter_wanted(plan)
        if wanted == self._adapter:
            return
        if self._adapter is not None:
            pipe.unload_ip_adapter()
            self._adapter = None
        if wanted is None:
            return
        source = plan.adapter
        if source.encoder not in self._encoders:
            from transformers import CLIPVisionModelWithProjection

            with _load_errors_explained(f"the image encoder {source.encoder}"):
                encoder = CLIPVisionModelWithProjection.from_pretrained(
                    source.encoder, dtype=torch_dtype(self.placement.dtype), local_files_only=True)
            self.loads.append(source.encoder)
            self._encoders[source.encoder] = encoder.to(self.placement.device)
        if source.path not in self._adapter_states:
            with _load_errors_explained(f"the IP-Adapter {source.path}"):
                self._adapter_states[source.path] = read_adapter(source)
            self.loads.append(source.path)
        # Registered first, so diffusers takes this encoder instead of looking for one.
        pipe.register_modules(image_encoder=self._encoders[source.encoder])
        state = self._adapter_states[source.path]
        with _load_errors_explained(f"the IP-Adapter {source.path}"):
            pipe.load_ip_adapter([state] * plan.references, subfolder="", weight_name=[""] * plan.references)
        self._adapter = wanted

    def _load_base(self, source: ModelSource):
        """The base text-to-image pipeline for `source`, loaded once."""
        if self._base_source != source:
            # Free the previous model before loading the next: two at once may not fit. Its files
            # were checked when planned, so what fails from here is rare, and leaves no model.
            self.clear()
            from diffusers import StableDiffusionPipeline, StableDiffusionXLPipeline

            cls = StableDiffusionXLPipeline if source.family == "sdxl" else StableDiffusionPipeline
            extra = {} if source.family == "sdxl" else {"safety_checker": None, "feature_extractor": None,
                                                         "requires_safety_checker": False}
            dtype = torch_dtype(self.placement.dtype)
            with _load_errors_explained(f"the model {source.label}"):
                if source.single_file:
                    # The configs come from a local folder: diffusers would otherwise fetch them.
                    pipe = cls.from_single_file(source.path, config=source.config, dtype=dtype,
                                                local_files_only=True, **extra)
                else:
                    # Pickle allowed: safetensors still first, pickle files where there are none.
                    pipe = cls.from_pretrained(source.path, dtype=dtype, local_files_only=True,
                                               use_safetensors=None if source.pickle else True, **extra)
            self.loads.append(source.path)
            if self.placement.device != "cpu":  # loaded on the CPU already
                pipe.to(self.placement.device)
            pipe.set_progress_bar_config(disable=True)
            self._base, self._base_source = pipe, source
            self._default_scheduler = pipe.scheduler
            self._loras = LoraAdapters(pipe, source.label, source.family)
            self._embeddings = Embeddings(pipe, source.label, source.family)
        return self._base

    def _load_controlnet(self, source: ModelSource):
        if source.path not in self._controlnets:
            from diffusers import ControlNetModel, ControlNetUnionModel

            cls = ControlNetUnionModel if source.union else ControlNetModel
            with _load_errors_explained(f"the ControlNet {source.spec}"):
                model = cls.from_pretrained(source.path, dtype=torch_dtype(self.placement.dtype),
                                            local_files_only=True,
                                            use_safetensors=None if source.pickle else True)
            self.loads.append(source.path)
            if self.placement.device != "cpu":
                model.to(self.placement.device)
            self._controlnets[source.path] = model
        return self._controlnets[source.path]

    def _controlnet_for(self, plan: Plan):
        """The `controlnet` component: one model, or one per unit wrapped for diffusers."""
        from diffusers.models.controlnets import MultiControlNetModel, MultiControlNetUnionModel

        models = [self._load_controlnet(c) for c in plan.controlnets]
        if len(models) == 1 or plan.shared_union:
            return models[0]  # a shared union model takes every unit as one of its modes
        # A model used by several units appears several times: the weights are shared.
        return MultiControlNetUnionModel(models) if plan.controls == "union" else MultiControlNetModel(models)


@contextlib.contextmanager
def _load_errors_explained(what: str):
    """diffusers' loading errors as a DiffusionError: the files do not hold what they should.

    Files are checked before loading (engine.weights); this catches what only loading shows,
    such as weights of other sizes than the config says.
    """
    from safetensors import SafetensorError

    try:
        yield
    except (OSError, ValueError, RuntimeError, KeyError, SafetensorError) as error:
        raise DiffusionError(f"Cannot load {what}: {error}",
                             "check that its files are complete and belong together (download it again), "
                             "or pick another") from error


def _sharing(cls, pipe, **replacements):
    """A `cls` pipeline on `pipe`'s very modules, with its settings (requires_safety_checker...).

    This is diffusers' documented `Img2ImgPipeline(**pipe.components)`; `from_pipe` does the
    same plus a cast of every module to one dtype, which ours already have (they are all
    loaded in the engine's): that pass alone took 90% of a mode switch.
    """
    accepted = inspect.signature(cls.__init__).parameters
    components = {name: module for name, module in pipe.components.items() if name in accepted}
    settings = {name: value for name, value in pipe.config.items() if name in accepted and name not in components}
    return cls(**{**components, **settings, **replacements})


class _VacuousDtypeWarning(logging.Filter):
    """Drops diffusers' warning that a cast would touch float32-only modules when there are none."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        return not (message.startswith("There are modules in") and "kept in float32: []" in message)


@contextlib.contextmanager
def without_vacuous_dtype_warning():
    """SDXL's image-to-image and inpainting cast the VAE to float32 and back at every call,
    and log that warning each time: noise in Blender's console."""
    logger = logging.getLogger("diffusers.models.modeling_utils")
    drop = _VacuousDtypeWarning()
    logger.addFilter(drop)
    try:
        yield
    finally:
        logger.removeFilter(drop)


def without_progress_monitor() -> None:
    """No tqdm monitor thread in Blender's process. The progress bars of diffusers and
    transformers (made even when disabled: model loading makes them) start one that wakes
    every 10 s and runs Python, refreshing bars, and a render under a context override
    beside Python on another thread can crash Blender (scripts/check_render_beside_python.py;
    a CI run crashed in the video render after the frames with this thread alive). The monitor only
    speeds up stalled bars' printing: nothing here needs it. Stops one already running."""
    import threading

    import tqdm
    from tqdm._monitor import TMonitor

    tqdm.tqdm.monitor_interval = 0  # the class every tqdm bar class inherits it from
    for thread in threading.enumerate():
        if isinstance(thread, TMonitor):
            thread.exit()  # wakes it and joins it
