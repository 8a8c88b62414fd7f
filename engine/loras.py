# SPDX-License-Identifier: GPL-3.0-or-later
"""LoRAs: any number, each with a weight, switched without reloading the base model.

Each LoRA file is loaded once into the base pipeline as a named peft adapter (diffusers'
`load_lora_weights`) and kept; a generation activates the ones it asks for with their
weights (`set_adapters`), or disables them all, which gives exactly the base model's
output. Before loading, every LoRA layer is matched against the model's layers by name
and size, so a LoRA made for another model is refused with a message and the base model
is left as it was (diffusers itself would load the layers that happen to fit and only
warn about the rest).

Few-step LoRAs (LCM-LoRA, SDXL-Lightning, Hyper-SD, TCD) need their own scheduler and
little or no classifier-free guidance. They are recognised by their file or folder name
(see FEW_STEP_PATTERNS: the names these LoRAs are published under), or named explicitly
with `LoraSpec.few_step`; `few_step="none"` marks a LoRA as an ordinary one whatever its name.
"""
from __future__ import annotations

import contextlib
import logging
import math
import os
import re
import warnings
from collections import OrderedDict
from dataclasses import dataclass

from . import weights
from .errors import DiffusionError
from .requests import LoraSpec


@dataclass(frozen=True)
class FewStep:
    """What a few-step LoRA needs: its scheduler, and the guidance it was distilled for.

    max_guidance: above this the images burn; such requests run at `guidance` instead
    (1 = no classifier-free guidance, which also halves the work per step).
    """
    label: str
    scheduler: str
    max_guidance: float
    guidance: float


FEW_STEP: dict[str, FewStep] = {
    "lcm": FewStep("LCM", "lcm", max_guidance=2.0, guidance=1.0),
    "lightning": FewStep("SDXL-Lightning", "euler_trailing", max_guidance=1.0, guidance=1.0),
    "hyper": FewStep("Hyper-SD", "ddim_trailing", max_guidance=1.0, guidance=1.0),
    # Hyper-SD's "CFG" LoRAs are distilled to work with guidance (5 to 8 recommended).
    "hyper_cfg": FewStep("Hyper-SD (CFG)", "ddim_trailing", max_guidance=math.inf, guidance=1.0),
    "tcd": FewStep("TCD", "tcd", max_guidance=1.0, guidance=1.0),
}
FEW_STEP_KINDS = ("auto", "none", *FEW_STEP)

# Matched, in order, against "<folder>/<file name>" in lower case: the names the published
# few-step LoRAs carry (latent-consistency/lcm-lora-sdxl, Hyper-SD15-8steps-CFG-lora,
# sdxl_lightning_4step_lora, TCD-SDXL-LoRA, dmd2_sdxl_4step_lora uses LCM's scheduler).
FEW_STEP_PATTERNS = (
    ("hyper_cfg", re.compile(r"hyper[-_ ]?sd.*cfg")),
    ("hyper", re.compile(r"hyper[-_ ]?sd")),
    ("lightning", re.compile(r"lightning")),
    ("tcd", re.compile(r"(^|[^a-z])tcd([^a-z]|$)")),
    ("lcm", re.compile(r"(^|[^a-z])(lcm|dmd2)([^a-z]|$)")),
)

MAX_KEPT = 8  # adapters kept loaded for switching back; beyond that the least recently used go


@dataclass(frozen=True)
class LoraSource:
    """A LoRA file found and checked, with the weight it is applied with.

    identity: (size, modification time): a file changed on disk is loaded again.
    few_step: a FEW_STEP key, or "" for an ordinary LoRA.
    """
    path: str
    weight: float
    identity: tuple[int, int]
    few_step: str = ""
    pickle: bool = False

    @property
    def name(self) -> str:
        return os.path.basename(self.path)

    @property
    def key(self) -> tuple[str, tuple[int, int]]:
        return (self.path, self.identity)


def recognise_few_step(path: str) -> str:
    """The few-step kind a LoRA's file or folder name says, or ""."""
    name = "/".join(os.path.normpath(os.path.abspath(path)).split(os.sep)[-2:]).lower()
    for kind, pattern in FEW_STEP_PATTERNS:
        if pattern.search(name):
            return kind
    return ""


def resolve_loras(specs: tuple[LoraSpec, ...], allow_pickle: bool) -> tuple[LoraSource, ...]:
    """The LoRAs to apply, checked on disk (no weights read); weight 0 means off.

    The same file listed twice counts once, with the weights added (a LoRA's effect is
    linear in its weight).
    """
    found: dict[str, LoraSource] = {}
    for spec in specs:
        if spec.few_step not in FEW_STEP_KINDS:
            raise DiffusionError(f"Unknown few-step kind '{spec.few_step}' for the LoRA {spec.path}",
                                 f"use one of: {', '.join(FEW_STEP_KINDS)}")
        if not math.isfinite(spec.weight):
            raise DiffusionError(f"The LoRA {spec.path} has no usable weight ({spec.weight})", "set its weight")
        if spec.weight == 0:
            continue
        path = os.path.abspath(os.path.expanduser(spec.path.strip()))
        if not spec.path.strip() or not os.path.isfile(path):
            what = "folder, not a file" if os.path.isdir(path) else "file that does not exist"
            raise DiffusionError(f"The LoRA {spec.path or '(empty)'} is a {what}",
                                 "pick the LoRA's .safetensors file, or remove it from the list")
        if weights.is_pickle(path):
            if not allow_pickle:
                weights.refuse_pickle(path, "LoRA")
        elif path.lower().endswith(weights.SAFE_SUFFIXES):
            _check_is_lora(path)
        else:
            raise DiffusionError(f"The LoRA {os.path.basename(path)} is not a .safetensors file",
                                 "pick the LoRA's .safetensors file")
        few_step = recognise_few_step(path) if spec.few_step == "auto" else spec.few_step
        stat = os.stat(path)
        source = LoraSource(path, spec.weight, (stat.st_size, stat.st_mtime_ns),
                            few_step="" if few_step == "none" else few_step, pickle=weights.is_pickle(path))
        if path in found:
            source = LoraSource(path, found[path].weight + spec.weight, source.identity, found[path].few_step,
                                source.pickle)
        found[path] = source
    return tuple(found.values())


def _check_is_lora(path: str) -> None:
    keys = weights.tensor_shapes(path, "LoRA").keys()
    if any("lora" in key.lower() for key in keys):
        return
    if any(key.startswith("model.diffusion_model.") for key in keys):
        raise DiffusionError(f"{os.path.basename(path)} is a full model checkpoint, not a LoRA",
                             "set it as the model instead, and remove it from the LoRA list")
    raise DiffusionError(f"{os.path.basename(path)} is not a LoRA: none of its tensors is a LoRA layer",
                         "pick a LoRA file, or remove it from the list")


def few_step_of(loras: tuple[LoraSource, ...]) -> tuple[LoraSource, FewStep] | None:
    """The first few-step LoRA among `loras`, and what it needs."""
    for lora in loras:
        if lora.few_step:
            return lora, FEW_STEP[lora.few_step]
    return None


class LoraAdapters:
    """The LoRAs loaded into one base pipeline as named adapters, kept for switching."""

    def __init__(self, pipe, label: str, family: str) -> None:
        self.pipe = pipe
        self.label = label  # the base model, for messages
        self.family = family
        self._adapters: OrderedDict[tuple, str] = OrderedDict()  # LoRA key -> adapter name, oldest first
        self._count = 0
        # The (adapter, weight) pairs active now; None: unknown (after a load or a deletion).
        self._state: tuple[tuple[str, float], ...] | None = ()

    @property
    def loaded(self) -> tuple[str, ...]:
        return tuple(self._adapters.values())

    @property
    def active(self) -> tuple[str, ...]:
        return tuple(name for name, _weight in self._state or ())

    def apply(self, loras: tuple[LoraSource, ...], loads: list[str]) -> None:
        """Activate exactly `loras` with their weights (loading the new ones); none: all off.

        The same LoRAs at the same weights as last time change nothing (each change walks
        every layer of the model)."""
        names = [self._adapter_for(lora, loads) for lora in loras]
        state = tuple((name, float(lora.weight)) for name, lora in zip(names, loras))
        if state == self._state:
            return
        if not names:
            if self._adapters:
                self.pipe.disable_lora()  # the LoRA layers pass the base layers' output through untouched
        else:
            if not self._state:  # off, or unknown
                self.pipe.enable_lora()
            self.pipe.set_adapters(names, [weight for _name, weight in state])
        self._state = state
        self._evict(keep=set(names))

    def _adapter_for(self, lora: LoraSource, loads: list[str]) -> str:
        if lora.key in self._adapters:
            self._adapters.move_to_end(lora.key)
            return self._adapters[lora.key]
        for key in [k for k in self._adapters if k[0] == lora.path]:
            self._delete(self._adapters.pop(key))  # the file changed on disk since it was loaded
        self._check_fits(lora)
        self._state = None  # loading may activate the new adapter, and a failure may leave anything
        self._count += 1
        name = f"lora_{self._count}"
        folder, file_name = os.path.split(lora.path)
        try:
            with _quiet_adapter_loading():
                self.pipe.load_lora_weights(folder, weight_name=file_name, adapter_name=name,
                                            use_safetensors=not lora.pickle, local_files_only=True)
        except (OSError, ValueError, RuntimeError, KeyError) as error:
            self._delete(name)  # whatever part of it was injected before the failure
            raise DiffusionError(f"Cannot load the LoRA {lora.name} into {self.label}: {error}",
                                 "check that it is a LoRA for this model, or remove it from the list") from error
        loads.append(lora.path)
        self._adapters[lora.key] = name
        return name

    def _evict(self, keep: set[str]) -> None:
        for key, name in list(self._adapters.items()):
            if len(self._adapters) <= MAX_KEPT:
                break
            if name not in keep:
                self._delete(self._adapters.pop(key))

    def _delete(self, name: str) -> None:
        self.pipe.delete_adapters([name])
        if self._state and name in self.active:
            self._state = None

    def _check_fits(self, lora: LoraSource) -> None:
        """Refuse a LoRA whose layers are not all in the model at the sizes it has."""
        from diffusers.utils import USE_PEFT_BACKEND

        if not USE_PEFT_BACKEND:
            raise DiffusionError("LoRAs need the peft package, which is not installed",
                                 "install the dependencies again (Preferences > Add-ons > Scene Diffusion)")
        folder, file_name = os.path.split(lora.path)
        try:
            state_dict, _alphas = self.pipe.lora_state_dict(
                folder, weight_name=file_name, use_safetensors=not lora.pickle, local_files_only=True,
                unet_config=self.pipe.unet.config)
        except (OSError, ValueError, RuntimeError, KeyError) as error:
            raise DiffusionError(f"Cannot read the LoRA {lora.name}: {error}",
                                 "check that it is a LoRA file for SD 1.5 or SDXL, or download it again") from error
        layers, problems = _mismatches(self.pipe, state_dict)
        if layers and not problems:
            return
        guess = _guess_family(state_dict)
        looks = f": it looks made for {guess}" if guess and guess != _FAMILY_NAMES.get(self.family) else ""
        detail = (f"{len(problems)} of its {layers} layers do not match the model's, e.g. {problems[0]}"
                  if layers else "it has no LoRA layers for the model's UNet or text encoders")
        raise DiffusionError(f"The LoRA {lora.name} does not fit the model {self.label}{looks} ({detail})",
                             f"use a LoRA made for {_FAMILY_NAMES.get(self.family, 'this model')}, "
                             "or remove it from the list")


@contextlib.contextmanager
def _quiet_adapter_loading():
    """Loading an adapter makes peft warn that the model has several (that is the point), and
    transformers log a "LOAD REPORT" listing the other adapters' weights as missing from the
    file (they are: they live in the other files). Neither is news for the person."""
    report = logging.getLogger("transformers.integrations.peft")
    level = report.level
    report.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Already found a `peft_config` attribute")
            yield
    finally:
        report.setLevel(level)


_FAMILY_NAMES = {"sd15": "SD 1.5", "sdxl": "SDXL"}
_LORA_WEIGHT = re.compile(r"^(.+)\.lora_([AB])\.weight$")


def _mismatches(pipe, state_dict: dict) -> tuple[int, list[str]]:
    """How many LoRA layers the state dict has, and what is wrong with those that miss the
    model or its sizes. Keys are brought to peft's naming the way diffusers does before loading."""
    from diffusers.utils import convert_state_dict_to_diffusers, convert_state_dict_to_peft
    from diffusers.utils.state_dict_utils import convert_unet_state_dict_to_peft

    components = {name: getattr(pipe, name, None) for name in pipe._lora_loadable_modules}
    parts: dict[str, dict] = {}
    layers: set[str] = set()
    problems: dict[str, str] = {}  # layer -> what is wrong, first found
    for key, value in state_dict.items():
        prefix, _, rest = key.partition(".")
        if components.get(prefix) is None:
            layer = re.sub(r"\.(lora[._].*|alpha)$", "", key)
            layers.add(layer)
            problems.setdefault(layer, f"{layer} is for a part the model does not have")
            continue
        parts.setdefault(prefix, {})[rest] = value
    for component, part in parts.items():
        model = components[component]
        if component == "unet":
            if not all("lora_A" in k or "lora_B" in k for k in part if "lora" in k):
                part = convert_unet_state_dict_to_peft(part)
        else:
            part = convert_state_dict_to_peft(convert_state_dict_to_diffusers(part))
            if not hasattr(model, "text_model"):  # CLIP flattened in recent transformers (as diffusers handles it)
                part = {k.removeprefix("text_model."): v for k, v in part.items()}
        for key, value in part.items():
            match = _LORA_WEIGHT.match(key)
            if match is None:
                continue  # alphas, biases, magnitudes: their sizes follow the layers'
            path, side = match[1], match[2]
            layer = f"{component}.{path}"
            layers.add(layer)
            try:
                module = model.get_submodule(path)
            except AttributeError:
                problems.setdefault(layer, f"{layer} is not in the model")
                continue
            weight = getattr(getattr(module, "base_layer", module), "weight", None)
            if weight is None or weight.ndim < 2 or value.ndim < 2:
                continue
            # Linear [out, in] and Conv2d [out, in, k, k]; LoRA A is [rank, in...], B is [out, rank...].
            expected, got = (weight.shape[1], value.shape[1]) if side == "A" else (weight.shape[0], value.shape[0])
            if expected != got:
                problems.setdefault(layer, f"{layer} has {got} {'inputs' if side == 'A' else 'outputs'} "
                                           f"where the model's has {expected}")
    return len(layers), list(problems.values())


def _guess_family(state_dict: dict) -> str:
    """The model family a LoRA was made for, from its layers, when they say."""
    if any(key.startswith(("text_encoder_2.", "lora_te2_")) for key in state_dict):
        return "SDXL"
    # The text features the UNet's cross-attention reads: 768 wide in SD 1.5, 1024 in SD 2.x, 2048 in SDXL.
    widths = {value.shape[1] for key, value in state_dict.items()
              if "attn2" in key and "to_k" in key and ("lora_A" in key or "down" in key) and value.ndim >= 2}
    for width, family in ((2048, "SDXL"), (1024, "SD 2.x"), (768, "SD 1.5")):
        if width in widths:
            return family
    if any(key.startswith("transformer.") for key in state_dict):
        return "a transformer model (Flux, SD3, ...)"
    return ""
