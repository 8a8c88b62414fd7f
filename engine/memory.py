# SPDX-License-Identifier: GPL-3.0-or-later
"""Memory: model CPU offload, VAE tiling and attention slicing, chosen from free memory.

Each of the three is "auto", "on" or "off" (`MemoryOptions`). "auto" is decided by
`choose_memory`, a pure function of the device's free memory and the generation's size,
from an estimate of the peak memory of the two big phases (the denoising loop and the
VAE decode). The cheapest remedy goes first: VAE tiling (slightly slower decode, only for
images larger than the VAE's tile), then attention slicing (only where attention is not
already memory-efficient), then model CPU offload (CUDA only: moves each model to the GPU
when it runs). `MemoryManager` applies a choice to the cached pipeline and undoes it later
without reloading anything; running out of memory anyway becomes a DiffusionError that
names these options (`out_of_memory_error`).

The estimate is rough by design (constants below, measured on CPU with the real SD 1.5
layouts and random weights); it only has to tell 8 GB from 24 GB, not predict to the MB.
"""
from __future__ import annotations

import gc
import weakref
from dataclasses import dataclass, field, fields

from .errors import DiffusionError

SETTINGS = ("auto", "on", "off")
OPTION_LABELS = {"offload": "CPU offload", "vae_tiling": "VAE tiling", "attention_slicing": "attention slicing"}
# Cheapest first: the order in which "auto" turns them on until the estimate fits.
AUTO_ORDER = ("vae_tiling", "attention_slicing", "offload")

GIB = 1024 ** 3
# Use at most this share of the free memory: the estimate is rough, and allocators fragment.
HEADROOM = 0.85
# Activation values held per latent pixel and batch item at the UNet's peak (skip connections,
# the feed-forward's 4x-wide GEGLU), and per ControlNet; per output pixel and image at the VAE
# decoder's peak (full-resolution 128/256-channel feature maps). From the peak RSS growth of one
# UNet call (batch 2) and one VAE decode of the SD 1.5 layouts with random weights, float32, on
# CPU, at 256² and 512²: UNet 28k/19k, VAE 1.5k/1.1k values (the smaller size has more overhead).
UNET_VALUES_PER_LATENT_PIXEL = 20_000
CONTROLNET_VALUES_PER_LATENT_PIXEL = 8_000
VAE_VALUES_PER_PIXEL = 1_100
# Without a known free amount (CPU without psutil), tile the VAE decode beyond this size.
LARGE_IMAGE_PIXELS = 2048 * 2048
# diffusers' advice for Apple GPUs: attention slicing below 64 GB of (shared) memory.
MPS_SLICING_BELOW = 64 * GIB


@dataclass(frozen=True)
class MemoryOptions:
    """The person's memory settings: each "auto" (decided from free memory), "on" or "off"."""
    offload: str = "auto"
    vae_tiling: str = "auto"
    attention_slicing: str = "auto"


@dataclass(frozen=True)
class DeviceMemory:
    """What the device offers a generation.

    free: bytes this generation may use, counting the weights of the loaded pipeline that
        already sit on the device (they are part of what it needs); None when unknown.
    efficient_attention: attention runs in memory linear in its length (PyTorch's SDPA
        kernels on CUDA and CPU); where not (MPS), the attention matrix is held whole.
    """
    device: str  # "cuda", "mps" or "cpu"
    free: int | None
    total: int | None = None
    efficient_attention: bool = True


@dataclass(frozen=True)
class Workload:
    """What one generation holds: the pipeline's weights (bytes) and the image's size.

    vae_dtype_bytes: SDXL's VAE decodes in float32 even in a float16 pipeline (force_upcast).
    vae_tile: the VAE's tile in pixels; tiling changes nothing for images within one tile.
    attention_heads / attention_downscale: heads of the UNet's first attention level, and
        how much smaller than the latent it is (SD 1.5: 1, SDXL: 2).
    """
    width: int
    height: int
    images: int = 1
    guided: bool = True  # classifier-free guidance doubles the UNet's batch
    dtype_bytes: int = 2
    vae_dtype_bytes: int = 2
    text_weights: int = 0
    unet_weights: int = 0
    vae_weights: int = 0
    controlnet_weights: int = 0
    controlnets: int = 0
    vae_tile: int = 512
    attention_heads: int = 8
    attention_downscale: int = 1


@dataclass(frozen=True)
class MemoryChoice:
    """What a generation runs with, the estimated peak (bytes) and why anything is on."""
    offload: bool = False
    vae_tiling: bool = False
    attention_slicing: bool = False
    estimate: int = 0
    reasons: tuple[str, ...] = field(default=(), compare=False)

    @property
    def switched_on(self) -> tuple[str, ...]:
        return tuple(name for name in OPTION_LABELS if getattr(self, name))

    def same_settings(self, other: MemoryChoice) -> bool:
        return self.switched_on == other.switched_on


def check_options(options: MemoryOptions, tiling: str = "") -> None:
    """Refuse settings that are not "auto"/"on"/"off", and VAE tiling with seamless tiling."""
    for f in fields(MemoryOptions):
        value = getattr(options, f.name)
        if value not in SETTINGS:
            label = OPTION_LABELS[f.name]
            raise DiffusionError(f"{label[0].upper()}{label[1:]} is set to {value!r}",
                                 "set it to auto, on or off")
    if tiling and options.vae_tiling == "on":
        # Each VAE tile would wrap around on itself: the seams come back, inside the image.
        raise DiffusionError("VAE tiling decodes the image in separate tiles, which breaks seamless tiling",
                             "set VAE tiling to Auto or Off for seamless images")


def estimate_peak(work: Workload, memory: DeviceMemory, offload: bool = False, vae_tiling: bool = False,
                  attention_slicing: bool = False) -> int:
    """Bytes at the generation's peak on the device: the larger of the denoising loop and
    the VAE decode, with the weights that are on the device at that time."""
    latent_pixels = (work.width // 8) * (work.height // 8)
    batch = work.images * (2 if work.guided else 1)
    unet = (UNET_VALUES_PER_LATENT_PIXEL + CONTROLNET_VALUES_PER_LATENT_PIXEL * work.controlnets) \
        * batch * latent_pixels * work.dtype_bytes
    if not memory.efficient_attention:
        tokens = latent_pixels // work.attention_downscale ** 2
        # Slicing ("auto") computes half the heads of one batch item at a time.
        rows = max(1, work.attention_heads // 2) if attention_slicing else batch * work.attention_heads
        unet += rows * tokens * tokens * work.dtype_bytes

    tiled = vae_tiling and max(work.width, work.height) > work.vae_tile
    decoded = work.vae_tile ** 2 if tiled else work.width * work.height
    vae = VAE_VALUES_PER_PIXEL * work.images * decoded * work.vae_dtype_bytes
    if not memory.efficient_attention:  # the VAE's one attention layer, over its tile's latents
        vae += work.images * (decoded // 64) ** 2 * work.vae_dtype_bytes
    if tiled:  # the decoded tiles and the blended image, float32
        vae += 2 * work.images * 3 * work.width * work.height * 4

    if offload:  # one model on the device at a time; ControlNets stay until the call ends
        return max(work.text_weights,
                   work.unet_weights + work.controlnet_weights + unet,
                   work.vae_weights + work.controlnet_weights + vae)
    weights = work.text_weights + work.unet_weights + work.vae_weights + work.controlnet_weights
    return weights + max(unet, vae)


def choose_memory(options: MemoryOptions, memory: DeviceMemory, work: Workload, seamless: bool = False) -> MemoryChoice:
    """The settings a generation runs with: the person's "on"/"off" as given (except where
    they cannot work on this device), and each "auto" on only when needed.

    Pure: the same memory and workload always give the same choice.
    """
    chosen = {name: getattr(options, name) == "on" for name in OPTION_LABELS}
    auto = {name for name in OPTION_LABELS if getattr(options, name) == "auto"}
    reasons: list[str] = []
    if chosen["offload"] and memory.device != "cuda":
        chosen["offload"] = False  # the weights already live in the one memory there is
        where = "the CPU" if memory.device == "cpu" else "Apple GPUs (their memory is the system's)"
        reasons.append(f"CPU offload does nothing on {where}: left off")
    if seamless:
        auto.discard("vae_tiling")  # tiles would break the seamless edges (see check_options)
    if memory.device != "cuda":
        auto.discard("offload")
    if memory.efficient_attention:
        auto.discard("attention_slicing")  # SDPA already works in slices; slicing would only slow it

    def peak(**changes: bool) -> int:
        return estimate_peak(work, memory, **{**chosen, **changes})

    if memory.device == "mps" and "attention_slicing" in auto and memory.total is not None \
            and memory.total < MPS_SLICING_BELOW:
        chosen["attention_slicing"] = True
        reasons.append(f"attention slicing on: {_gb(memory.total)} of memory shared with the system")
        auto.discard("attention_slicing")

    if memory.free is None:
        if "vae_tiling" in auto and work.width * work.height > LARGE_IMAGE_PIXELS:
            chosen["vae_tiling"] = True
            reasons.append(f"VAE tiling on: {work.width}×{work.height} is a very large image")
    else:
        budget = int(memory.free * HEADROOM)
        for name in AUTO_ORDER:
            current = peak()
            if current <= budget:
                break
            if name in auto and peak(**{name: True}) < current:
                chosen[name] = True
                reasons.append(f"{OPTION_LABELS[name]} on: about {_gb(current)} needed, {_gb(memory.free)} free")
        if peak() > budget:
            reasons.append(f"this may not fit: about {_gb(peak())} needed, {_gb(memory.free)} free")
    return MemoryChoice(**chosen, estimate=peak(), reasons=tuple(reasons))


def _gb(size: int) -> str:
    return f"{size / GIB:.1f} GB"


# ----- The device and the pipeline (impure) -----

# Module -> bytes of its weights. Walking every parameter costs ~20 ms per call with LoRAs
# loaded (5% of a small generation), so each module is measured once; LoRA layers added
# later are small next to the model and the figure is an estimate anyway.
_module_sizes: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def module_bytes(module) -> int:
    """Bytes of a module's weights and buffers (shared ones once), measured once per module."""
    size = _module_sizes.get(module)
    if size is None:
        tensors = list(module.parameters()) + list(module.buffers())
        size = _module_sizes[module] = sum(t.numel() * t.element_size() for t in tensors)
    return size


def resident_bytes(pipe, device: str) -> int:
    """Bytes of `pipe`'s weights that sit on `device` now (none of them while offloaded).

    A module counts as a whole where its first weight is: offloading moves whole modules.
    """
    kind = device.split(":")[0]
    total = 0
    for module in _modules(pipe):
        first = next(module.parameters(), None)
        if first is not None and first.device.type == kind:
            total += module_bytes(module)
    return total


def device_memory(device: str, resident: int = 0) -> DeviceMemory:
    """The free memory of `device`, plus `resident` bytes the pipeline already holds there."""
    import torch

    if device.startswith("cuda"):
        index = torch.device(device)
        free, total = torch.cuda.mem_get_info(index)
        # Memory PyTorch has cached but not in use is free for us, though not for the driver.
        cached = torch.cuda.memory_reserved(index) - torch.cuda.memory_allocated(index)
        return DeviceMemory("cuda", free + cached + resident, total, efficient_attention=True)
    if device == "mps":
        total = torch.mps.recommended_max_memory()
        free = max(0, total - torch.mps.driver_allocated_memory())
        return DeviceMemory("mps", free + resident, total, efficient_attention=False)
    try:
        import psutil
    except ImportError:
        return DeviceMemory("cpu", None, None)
    memory = psutil.virtual_memory()
    return DeviceMemory("cpu", memory.available + resident, memory.total)


def workload(pipe, width: int, height: int, images: int, guidance: float, controlnets: int) -> Workload:
    """The Workload of a call of `pipe`, read from its modules and configs."""
    import torch

    sizes = {name: module_bytes(module) for name, module in pipe.components.items()
             if isinstance(module, torch.nn.Module)}
    unet, vae = pipe.unet, pipe.vae
    # The first weight's dtype: diffusers' `.dtype` walks every submodule (3 ms a call with LoRAs).
    unet_dtype, vae_dtype = next(unet.parameters()).dtype, next(vae.parameters()).dtype
    if vae_dtype == torch.float16 and getattr(vae.config, "force_upcast", False) and hasattr(pipe, "upcast_vae"):
        vae_dtype = torch.float32  # SDXL pipelines decode in float32 then
    config = unet.config
    first = next((i for i, kind in enumerate(config.down_block_types) if "CrossAttn" in kind), 0)
    heads = config.attention_head_dim  # diffusers' name; it holds the number of heads
    heads = heads[first] if isinstance(heads, (list, tuple)) else heads
    return Workload(
        width=width, height=height, images=images,
        guided=guidance > 1.0 and getattr(config, "time_cond_proj_dim", None) is None,
        dtype_bytes=unet_dtype.itemsize, vae_dtype_bytes=vae_dtype.itemsize,
        text_weights=sum(size for name, size in sizes.items() if name.startswith("text_encoder")),
        unet_weights=sizes.get("unet", 0), vae_weights=sizes.get("vae", 0),
        controlnet_weights=sizes.get("controlnet", 0), controlnets=controlnets,
        vae_tile=int(getattr(vae, "tile_sample_min_size", 512)),
        attention_heads=int(heads), attention_downscale=2 ** first,
    )


def _modules(pipe) -> list:
    import torch

    return [m for m in pipe.components.values() if isinstance(m, torch.nn.Module)]


class MemoryManager:
    """Applies a MemoryChoice to the pipeline about to run, undoing the previous one.

    Variants of one base model share its modules, so what is set on one (VAE tiling,
    attention processors, offload hooks) is set for all: the manager remembers the
    pipeline it configured (weakly: a dropped model is freed) and what it changed there.
    """

    def __init__(self, device: str) -> None:
        self.device = device
        # Weak references only: a model the cache drops must be freed before the next loads.
        self._pipe = None  # a weakref to the pipeline configured last
        self._applied = MemoryChoice()
        # (weakref to a module, its attention processors before slicing)
        self._saved_processors: list[tuple[weakref.ref, dict]] = []

    @property
    def applied(self) -> MemoryChoice:
        return self._applied

    def configure(self, pipe, options: MemoryOptions, width: int, height: int, images: int, guidance: float,
                  controlnets: int, seamless: bool = False) -> MemoryChoice:
        """Choose the settings for a call of `pipe` and apply them; returns the choice.

        Weights offloaded by the last call are not on the device: the free memory counts
        them as free, and the estimate without offload counts them as needed, so "auto"
        turns offload off again when the device has room.
        """
        memory = device_memory(self.device, resident_bytes(pipe, self.device))
        work = workload(pipe, width, height, images, guidance, controlnets)
        choice = choose_memory(options, memory, work, seamless)
        self.apply(pipe, choice)
        return choice

    def apply(self, pipe, choice: MemoryChoice) -> None:
        previous = self._pipe() if self._pipe is not None else None
        if previous is pipe and self._applied.same_settings(choice):
            self._applied = choice
            return
        if previous is not None:
            was_offloaded = self._applied.offload
            same_base = getattr(previous, "unet", None) is getattr(pipe, "unet", None)
            # A pipeline of another base model is being dropped: no need to move it back.
            self._undo(previous, move_back=same_base and not choice.offload)
            if was_offloaded and same_base and not choice.offload:
                pipe.to(self.device)  # its own ControlNets may have been offloaded with another variant
        self._saved_processors = []
        if choice.vae_tiling:
            pipe.vae.enable_tiling()
        else:
            pipe.vae.disable_tiling()
        if choice.attention_slicing:
            # Keep the processors as they are (a LoRA or adapter may have set its own) to restore them exactly.
            for module in _modules(pipe):
                if hasattr(module, "set_attention_slice") and hasattr(module, "attn_processors"):
                    saved = dict(module.attn_processors)
                    self._saved_processors.append((weakref.ref(module), saved))
                    module.set_attention_slice("auto")
                    # Slicing would replace IP-Adapter layers with plain ones: those stay as they are.
                    adapters = {name: processor for name, processor in saved.items() if hasattr(processor, "to_k_ip")}
                    if adapters:
                        module.set_attn_processor({**module.attn_processors, **adapters})
        if choice.offload:
            pipe.enable_model_cpu_offload(device=self.device)
        self._pipe, self._applied = weakref.ref(pipe), choice

    def release(self) -> None:
        """Undo every setting applied (before something else replaces the attention processors
        they saved, such as loading or unloading an IP-Adapter)."""
        previous = self._pipe() if self._pipe is not None else None
        if previous is not None:
            self._undo(previous, move_back=True)

    def _undo(self, pipe, move_back: bool) -> None:
        if self._applied.offload:
            pipe.remove_all_hooks()
            if move_back:
                pipe.to(self.device)
        for module_ref, processors in self._saved_processors:
            module = module_ref()
            if module is not None:
                module.set_attn_processor(processors)
        self._saved_processors = []
        pipe.vae.disable_tiling()
        self._pipe, self._applied = None, MemoryChoice()


# ----- Running out of memory -----

_OUT_OF_MEMORY_MESSAGES = ("out of memory", "can't allocate memory", "not enough memory", "cannot allocate memory")


def is_out_of_memory(error: BaseException) -> bool:
    """CUDA's torch.OutOfMemoryError, or the CPU and MPS allocators' RuntimeErrors."""
    import torch

    if isinstance(error, torch.OutOfMemoryError):
        return True
    return isinstance(error, RuntimeError) and any(m in str(error).lower() for m in _OUT_OF_MEMORY_MESSAGES)


def out_of_memory_error(width: int, height: int, choice: MemoryChoice, device: str) -> DiffusionError:
    """The error a person sees: where it happened and what to turn on."""
    available = [name for name in ("offload", "vae_tiling", "attention_slicing")
                 if not getattr(choice, name) and (name != "offload" or device.startswith("cuda"))]
    if available:
        fix = (f"turn on {' / '.join(OPTION_LABELS[name] for name in available)} under Advanced, "
               "or lower the resolution")
    else:
        fix = "lower the resolution or the number of images"
    return DiffusionError(f"Out of memory at {width}×{height}", fix)


def free_cached(device: str) -> None:
    """Give the memory of a failed call back, so the next generation starts clean."""
    import torch

    gc.collect()  # the failed call's tensors are unreachable now; collect cycles holding them
    if device.startswith("cuda") and torch.cuda.is_available():
        torch.cuda.empty_cache()
    elif device == "mps" and getattr(torch, "mps", None) is not None:
        torch.mps.empty_cache()
