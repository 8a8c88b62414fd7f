# SPDX-License-Identifier: GPL-3.0-or-later
"""What share of a 4096x2048 World's time is spent outside the UNet with Stable Diffusion
1.5's real shapes (random weights: the time does not depend on them), on this machine.

    python scripts/world_share_real_shapes.py [STEPS ...]   # default: 3 (make bench's) and 20 (the panel's)

`make bench` measures the World with the smoke model, whose UNet is so small that one VAE
pass costs several UNet steps; this measures each part of the real shapes once (a UNet
call with classifier-free guidance at the window's and at the base panorama's latent size,
a VAE encode and decode at each) and adds them up over the passes `engine.worlds.passes`
makes: the base panorama (text to image, every step), each window (image to image at the
refine strength: encode, int(steps x strength) UNet calls, decode) and the two poles
(inpainted: encode, every step, decode). Our own work (upscale, blend, poles, about 3 s on
this CPU, from `make bench`) is passed with --ours. Prints one JSON line. Takes minutes
and ~5 GB of memory: not part of `make bench`.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _timed(call, runs: int = 2) -> float:
    call()  # warm
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        call()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("steps", nargs="*", type=int, default=[3, 20])
    parser.add_argument("--ours", type=float, default=3.0, help="seconds of our own work (make bench's figure)")
    args = parser.parse_args()

    import torch
    from diffusers import AutoencoderKL, UNet2DConditionModel

    from engine.worlds import WorldSettings, passes

    torch.manual_seed(0)
    unet = UNet2DConditionModel(sample_size=64, cross_attention_dim=768, attention_head_dim=8,
                                block_out_channels=(320, 640, 1280, 1280), layers_per_block=2).eval()
    vae = AutoencoderKL(block_out_channels=(128, 256, 512, 512), layers_per_block=2, latent_channels=4,
                        down_block_types=("DownEncoderBlock2D",) * 4, up_block_types=("UpDecoderBlock2D",) * 4).eval()
    text = torch.randn(2, 77, 768)
    settings = WorldSettings(width=4096, height=2048, base_width=1024, window=512, overlap=128,
                             refine_strength=0.35, cap_size=512)
    plan = passes(settings)
    with torch.no_grad():
        parts = {}
        for name, (height, width) in {"square": (512, 512), "base": (512, 1024)}.items():
            latent = torch.randn(2, 4, height // 8, width // 8)
            parts[f"unet_{name}"] = _timed(lambda latent=latent: unet(latent, 500, encoder_hidden_states=text))
            pixels = torch.randn(1, 3, height, width)
            parts[f"encode_{name}"] = _timed(lambda pixels=pixels: vae.encode(pixels))
            parts[f"decode_{name}"] = _timed(lambda latent=latent: vae.decode(latent[:1]))
    windows = sum(step.kind == "window" for step in plan)
    poles = sum(step.kind in ("zenith", "nadir") for step in plan)
    rows = []
    for steps in args.steps:
        unet_seconds = (steps * parts["unet_base"] + poles * steps * parts["unet_square"]
                        + windows * int(steps * settings.refine_strength) * parts["unet_square"])
        vae_seconds = (parts["decode_base"] + (windows + poles) * (parts["encode_square"] + parts["decode_square"]))
        total = unet_seconds + vae_seconds + args.ours
        rows.append({"steps": steps, "unet": unet_seconds, "vae": vae_seconds, "ours": args.ours,
                     "outside_unet_share": (vae_seconds + args.ours) / total})
    print(json.dumps({"parts": parts, "windows": windows, "poles": poles, "worlds": rows}))


if __name__ == "__main__":
    main()
