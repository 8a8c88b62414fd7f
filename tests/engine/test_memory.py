# SPDX-License-Identifier: GPL-3.0-or-later
"""Memory: the automatic choice of CPU offload / VAE tiling / attention slicing (a pure
function, on the real models' sizes), applying and undoing them on the cached pipeline,
and running out of memory as an error that says what to turn on, after which the engine
still works.

Out of memory on a CPU is provoked for real: a forward pre-hook on the VAE decoder asks the
allocator for 1 PiB, which it refuses at once with its own RuntimeError, at the place where
real generations run out (the decode). A CUDA-style torch.OutOfMemoryError is raised from
inside the UNet's forward the same way. Nothing of diffusers is replaced.
"""

import numpy as np
import pytest
import torch

from engine import DiffusionError, GenerationRequest, MemoryOptions
from engine.memory import (
    GIB, DeviceMemory, MemoryChoice, Workload, check_options, choose_memory, estimate_peak, is_out_of_memory,
    out_of_memory_error,
)

# Weights in bytes, float16: parameters x 2 (SD 1.5: UNet 859.5M, CLIP ViT-L text 123.1M,
# VAE 83.7M; SDXL: UNet 2567.5M, two text encoders 123.1M + 694.7M).
SD15 = dict(text_weights=246_000_000, unet_weights=1_719_000_000, vae_weights=167_000_000,
            vae_tile=512, attention_heads=8, attention_downscale=1)
SDXL = dict(text_weights=1_636_000_000, unet_weights=5_135_000_000, vae_weights=167_000_000,
            vae_dtype_bytes=4, vae_tile=1024, attention_heads=5, attention_downscale=2)

def sd15(size: int, **changes) -> Workload:
    return Workload(width=size, height=size, **{**SD15, **changes})

def sdxl(size: int, **changes) -> Workload:
    return Workload(width=size, height=size, **{**SDXL, **changes})

def gpu(free_gb: float) -> DeviceMemory:
    return DeviceMemory("cuda", int(free_gb * GIB), int((free_gb + 0.5) * GIB))

def on(choice: MemoryChoice) -> tuple[str, ...]:
    return choice.switched_on

AUTO = MemoryOptions()

# ----- The choice (pure) -----

def test_a_roomy_gpu_switches_nothing_on():
    assert on(choose_memory(AUTO, gpu(78), sdxl(1024))) == ()
    assert on(choose_memory(AUTO, gpu(22), sdxl(1024))) == ()
    assert on(choose_memory(AUTO, gpu(7.5), sd15(512))) == ()

def test_an_8_gb_gpu_offloads_sdxl_and_says_why():
    choice = choose_memory(AUTO, gpu(7.5), sdxl(1024))
    # VAE tiling cannot help at 1024² (SDXL's VAE tile is 1024 pixels), offload does.
    assert on(choice) == ("offload",)
    assert any("CPU offload on" in reason and "free" in reason for reason in choice.reasons)
    assert choice.estimate <= 7.5 * GIB * 0.85

def test_a_large_image_gets_vae_tiling_first():
    assert on(choose_memory(AUTO, gpu(11), sd15(2048))) == ("vae_tiling",)
    assert on(choose_memory(AUTO, gpu(30), sd15(2048))) == ()

def test_the_persons_on_and_off_win_over_auto():
    forced_off = MemoryOptions(offload="off", vae_tiling="off", attention_slicing="off")
    choice = choose_memory(forced_off, gpu(3), sdxl(1024))
    assert on(choice) == ()
    assert any("may not fit" in reason for reason in choice.reasons)
    forced_on = MemoryOptions(offload="on", vae_tiling="on", attention_slicing="on")
    assert on(choose_memory(forced_on, gpu(78), sd15(512))) == ("offload", "vae_tiling", "attention_slicing")

def test_cpu_never_offloads_and_tiles_only_very_large_images():
    roomy = DeviceMemory("cpu", 20 * GIB, 24 * GIB)
    assert on(choose_memory(AUTO, roomy, sd15(1024, dtype_bytes=4, vae_dtype_bytes=4))) == ()
    assert on(choose_memory(AUTO, roomy, sdxl(4096, dtype_bytes=4))) == ("vae_tiling",)
    unknown = DeviceMemory("cpu", None)  # no psutil: by size alone
    assert on(choose_memory(AUTO, unknown, sd15(1024))) == ()
    assert on(choose_memory(AUTO, unknown, sd15(4096))) == ("vae_tiling",)
    choice = choose_memory(MemoryOptions(offload="on"), roomy, sd15(512))
    assert on(choice) == ()
    assert any("does nothing on the CPU" in reason for reason in choice.reasons)

def test_apple_gpus_slice_attention_below_64_gb():
    small = DeviceMemory("mps", 12 * GIB, 16 * GIB, efficient_attention=False)
    assert on(choose_memory(AUTO, small, sd15(512))) == ("attention_slicing",)
    big = DeviceMemory("mps", 100 * GIB, 128 * GIB, efficient_attention=False)
    assert on(choose_memory(AUTO, big, sd15(512))) == ()

def test_seamless_images_are_never_vae_tiled():
    assert "vae_tiling" not in on(choose_memory(AUTO, gpu(11), sd15(2048), seamless=True))
    with pytest.raises(DiffusionError, match="breaks seamless tiling"):
        check_options(MemoryOptions(vae_tiling="on"), tiling="x")
    check_options(MemoryOptions(vae_tiling="on"), tiling="")
    with pytest.raises(DiffusionError, match="auto, on or off"):
        check_options(MemoryOptions(offload="yes"))

def test_each_remedy_lowers_the_estimate_where_it_applies():
    cuda, mps = gpu(8), DeviceMemory("mps", 8 * GIB, 16 * GIB, efficient_attention=False)
    work = sd15(2048)
    plain = estimate_peak(work, cuda)
    assert estimate_peak(work, cuda, vae_tiling=True) < plain
    assert estimate_peak(work, cuda, offload=True) < plain
    assert estimate_peak(work, mps, attention_slicing=True) < estimate_peak(work, mps)
    assert estimate_peak(sd15(512), cuda, vae_tiling=True) == estimate_peak(sd15(512), cuda)  # one tile
    assert estimate_peak(sd15(1024), cuda) > estimate_peak(sd15(512), cuda)
    assert estimate_peak(sd15(512, images=4), cuda) > estimate_peak(sd15(512), cuda)

def test_the_out_of_memory_message_names_the_options_still_off():
    error = out_of_memory_error(2048, 2048, MemoryChoice(), "cuda")
    assert str(error) == ("Out of memory at 2048×2048: turn on CPU offload / VAE tiling / attention slicing "
                          "under Advanced, or lower the resolution")
    assert "CPU offload" not in out_of_memory_error(2048, 2048, MemoryChoice(), "cpu").fix
    assert "VAE tiling" not in out_of_memory_error(64, 64, MemoryChoice(vae_tiling=True), "cuda").fix
    everything = MemoryChoice(offload=True, vae_tiling=True, attention_slicing=True)
    assert out_of_memory_error(64, 64, everything, "cuda").fix == "lower the resolution or the number of images"

def test_out_of_memory_errors_are_told_from_others():
    assert is_out_of_memory(torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB"))
    assert is_out_of_memory(RuntimeError("MPS backend out of memory (MPS allocated: 17.00 GB)"))
    with pytest.raises(RuntimeError) as real:
        torch.empty(2**50, dtype=torch.uint8)
    assert is_out_of_memory(real.value)
    assert not is_out_of_memory(RuntimeError("mat1 and mat2 shapes cannot be multiplied"))

# ----- On the cached pipeline -----

def make_request(**changes) -> GenerationRequest:
    fields = dict(prompt="a red barn in snow", width=128, height=128, steps=2, seed=11, model="smoke")
    fields.update(changes)
    return GenerationRequest(**fields)

@pytest.fixture(scope="module")
def baseline(smoke_engine) -> np.ndarray:
    return smoke_engine.generate(make_request()).images[0]

def processor_classes(module) -> set[str]:
    return {type(p).__name__ for p in module.attn_processors.values()}

def test_auto_on_a_small_image_changes_nothing(smoke_engine, baseline):
    result = smoke_engine.generate(make_request())
    assert np.array_equal(result.images[0], baseline)
    pipe = smoke_engine.pipelines.current_base
    assert not pipe.vae.use_tiling
    assert processor_classes(pipe.unet) == {"AttnProcessor2_0"}
    assert smoke_engine.memory.applied.switched_on == ()
    assert not any(note.startswith(("VAE tiling", "attention", "CPU offload")) for note in result.notes)

def test_vae_tiling_and_attention_slicing_apply_and_undo_without_reloading(smoke_engine, baseline):
    loads = list(smoke_engine.loads)
    pipe = smoke_engine.pipelines.current_base

    tiled = smoke_engine.generate(make_request(memory=MemoryOptions(vae_tiling="on"))).images[0]
    assert pipe.vae.use_tiling
    assert not np.array_equal(tiled, baseline)  # decoded in 64-pixel tiles (the smoke VAE's tile)

    sliced = smoke_engine.generate(make_request(memory=MemoryOptions(attention_slicing="on"))).images[0]
    assert not pipe.vae.use_tiling
    assert processor_classes(pipe.unet) == {"SlicedAttnProcessor"}
    assert np.allclose(sliced, baseline, atol=1e-4)  # the same attention, computed in slices

    assert np.array_equal(smoke_engine.generate(make_request()).images[0], baseline)
    assert processor_classes(pipe.unet) == {"AttnProcessor2_0"}
    assert smoke_engine.loads == loads

def test_offload_hooks_apply_and_undo(smoke_engine, baseline):
    """Model CPU offload needs a GPU to be of use, and the automatic choice never picks it
    elsewhere; its diffusers/accelerate hooks can still be put on and taken off here, with
    the CPU as the execution device, to check that the manager leaves nothing behind."""
    pipe = smoke_engine.pipelines.pipeline(smoke_engine.plan(make_request()))
    manager = smoke_engine.memory
    try:
        manager.apply(pipe, MemoryChoice(offload=True))
        assert hasattr(pipe.unet, "_hf_hook")
        arguments = dict(width=128, height=128, num_inference_steps=2, output_type="np")
        offloaded = pipe("a red barn in snow", generator=torch.Generator().manual_seed(11), **arguments).images[0]
        assert np.array_equal(offloaded, baseline)
    finally:
        manager.apply(pipe, MemoryChoice())
    assert not any(hasattr(module, "_hf_hook") for module in (pipe.unet, pipe.vae, pipe.text_encoder))
    assert np.array_equal(smoke_engine.generate(make_request()).images[0], baseline)

def test_running_out_of_memory_in_the_decode_says_what_to_do_and_the_engine_goes_on(smoke_engine, baseline):
    pipe = smoke_engine.pipelines.current_base

    def allocate_a_petabyte(module, args):
        torch.empty(2**50, dtype=torch.uint8)  # the CPU allocator refuses this at once

    hook = pipe.vae.decoder.register_forward_pre_hook(allocate_a_petabyte)
    try:
        with pytest.raises(DiffusionError) as failure:
            smoke_engine.generate(make_request())
    finally:
        hook.remove()
    assert failure.value.what == "Out of memory at 128×128"
    assert "VAE tiling / attention slicing under Advanced, or lower the resolution" in failure.value.fix
    assert failure.value.__context__ is None and failure.value.__cause__ is None  # holds no tensors
    assert np.array_equal(smoke_engine.generate(make_request()).images[0], baseline)

def test_a_cuda_out_of_memory_error_in_the_unet_too(smoke_engine, baseline):
    pipe = smoke_engine.pipelines.current_base

    def out_of_memory(module, args):
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 9.00 GiB")

    hook = pipe.unet.register_forward_pre_hook(out_of_memory)
    try:
        with pytest.raises(DiffusionError, match="Out of memory at 192×128: turn on"):
            smoke_engine.generate(make_request(width=192, memory=MemoryOptions(vae_tiling="on")))
    finally:
        hook.remove()
    assert np.array_equal(smoke_engine.generate(make_request()).images[0], baseline)

def test_other_runtime_errors_are_not_called_out_of_memory(smoke_engine):
    pipe = smoke_engine.pipelines.current_base

    def broken(module, args):
        raise RuntimeError("mat1 and mat2 shapes cannot be multiplied")

    hook = pipe.unet.register_forward_pre_hook(broken)
    try:
        with pytest.raises(RuntimeError, match="shapes cannot be multiplied"):
            smoke_engine.generate(make_request())
    finally:
        hook.remove()

def test_bad_memory_settings_are_refused_before_loading(smoke_engine):
    loads = list(smoke_engine.loads)
    with pytest.raises(DiffusionError, match="VAE tiling is set to 'maybe'"):
        smoke_engine.generate(make_request(memory=MemoryOptions(vae_tiling="maybe")))
    with pytest.raises(DiffusionError, match="breaks seamless tiling"):
        smoke_engine.generate(make_request(tiling="xy", memory=MemoryOptions(vae_tiling="on")))
    assert smoke_engine.loads == loads
