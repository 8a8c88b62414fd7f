# SPDX-License-Identifier: GPL-3.0-or-later
"""An animation's frames planned from Deforum's settings: what each frame is made with.

`plan_frames(settings)` turns the schedules (engine/schedules.py), the seed behaviour
(engine/seeds.py) and the prompts per frame (engine/frame_prompts.py) into one FramePlan
per frame of the range, before anything runs: every schedule error is a refusal that
changes nothing. Schedules see Deforum's frame index t = frame - first frame, and
max_f = the number of frames - 1.

Cadence: with `cadence` N only every N-th frame (t = 0, N, 2N, ...) is diffused; the frames
between are made from the diffused ones around them (warped and cross-faded). Seeds step
per diffused frame, as in Deforum.

Strength keeps Deforum's meaning, the share of the previous frame KEPT; diffusers'
strength is 1 - that. A frame whose strength leaves no denoising step (1.0, or steps x
(1 - strength) < 1) is the warped previous frame itself.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

from .errors import DiffusionError
from .frame_prompts import frame_prompts
from .schedules import parse_schedule
from .seeds import frame_seeds

__all__ = ["AnimationSettings", "FramePlan", "plan_frames", "SCHEDULE_NAMES"]

SCHEDULE_NAMES = ("strength_schedule", "noise_schedule", "contrast_schedule", "cfg_scale_schedule", "steps_schedule",
                  "amount_schedule", "kernel_schedule", "sigma_schedule", "threshold_schedule")


@dataclass(frozen=True)
class AnimationSettings:
    """Everything that decides an animation's frames but the scene (its captures) and the
    model's request settings; `as_dict()` is what the settings hash covers."""
    frame_start: int
    frame_end: int
    seed: int
    prompt: str
    negative_prompt: str = ""
    prompts_json: str = ""  # Deforum's prompts per frame; "" uses `prompt` for every frame
    strength_schedule: str = "0:(0.65)"
    noise_schedule: str = "0:(0.065)"
    contrast_schedule: str = "0:(1.0)"
    cfg_scale_schedule: str = "0:(7)"
    steps_schedule: str = "0:(25)"
    amount_schedule: str = "0:(0.1)"
    kernel_schedule: str = "0:(5)"
    sigma_schedule: str = "0:(1.0)"
    threshold_schedule: str = "0:(0.0)"
    seed_behavior: str = "ITER"
    seed_iter_n: int = 1
    seed_schedule: str = "0:(s), 1:(-1)"
    color_coherence: str = "LAB"
    cadence: int = 1
    use_init: bool = False
    blend_prompts: bool = False  # blend the text embeddings from each prompt key to the next

    @property
    def count(self) -> int:
        return self.frame_end - self.frame_start + 1

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class FramePlan:
    """One frame: its number, whether it is diffused, and its settings (Deforum's meaning)."""
    frame: int
    index: int  # Deforum's t
    diffused: bool
    strength: float  # the share of the previous frame kept
    noise: float
    contrast: float
    cfg: float
    steps: int
    seed: int
    amount: float
    kernel: int
    sigma: float
    threshold: float
    prompt: str
    negative_prompt: str
    # (the next key's prompt, its negative, how far towards it) when prompts are blended
    prompt_blend: tuple[str, str, float] | None = None

    @property
    def denoise(self) -> float:
        """diffusers' strength: how much of the frame is redrawn (rounded: 1 - 0.8 is
        0.19999999999999996 in floats, which would make 5 steps x 0.2 no step at all)."""
        return round(1.0 - self.strength, 9)

    @property
    def keeps_warp(self) -> bool:
        """No denoising step would run: the frame is the (adjusted) warped previous frame."""
        return int(self.steps * self.denoise) < 1


def plan_frames(settings: AnimationSettings) -> list[FramePlan]:
    count = settings.count
    if count < 1:
        raise DiffusionError(f"The frame range {settings.frame_start}–{settings.frame_end} has no frames",
                             "set End at or after Start")
    if settings.cadence < 1:
        raise DiffusionError(f"Cadence {settings.cadence}", "set it to 1 (every frame diffused) or more")
    values = {name: parse_schedule(getattr(settings, name), count, settings.seed, name=name)
              for name in SCHEDULE_NAMES}
    _check(values, settings.frame_start)
    diffused = [t for t in range(count) if t % settings.cadence == 0]
    seed_schedule = None
    if settings.seed_behavior.upper() == "SCHEDULE":
        seed_schedule = parse_schedule(settings.seed_schedule, count, settings.seed, name="seed_schedule")
    seeds = frame_seeds(settings.seed_behavior, settings.seed, len(diffused), settings.seed_iter_n,
                        [seed_schedule[t] for t in diffused] if seed_schedule is not None else None)
    seed_of = dict(zip(diffused, seeds))
    prompts = frame_prompts(settings.prompts_json, count) if settings.prompts_json.strip() else None
    plans = []
    last_seed = settings.seed
    for t in range(count):
        last_seed = seed_of.get(t, last_seed)
        blend = None
        if prompts is not None:
            prompt, negative = prompts[t].prompt, prompts[t].negative
            negative = ", ".join(filter(None, [negative, settings.negative_prompt]))
            following = prompts[t].next_key
            if settings.blend_prompts and following is not None and prompts[t].blend > 0:
                ahead = prompts[following]
                blend = (ahead.prompt, ", ".join(filter(None, [ahead.negative, settings.negative_prompt])),
                         prompts[t].blend)
        else:
            prompt, negative = settings.prompt, settings.negative_prompt
        plans.append(FramePlan(
            frame=settings.frame_start + t, index=t, diffused=t in seed_of,
            strength=values["strength_schedule"][t], noise=values["noise_schedule"][t],
            contrast=values["contrast_schedule"][t], cfg=values["cfg_scale_schedule"][t],
            steps=int(values["steps_schedule"][t]), seed=last_seed, amount=values["amount_schedule"][t],
            kernel=int(values["kernel_schedule"][t]), sigma=values["sigma_schedule"][t],
            threshold=values["threshold_schedule"][t], prompt=prompt, negative_prompt=negative, prompt_blend=blend))
    return plans


def _check(values: dict[str, list[float]], first: int) -> None:
    """Values no frame can be made with, named with the frame where they first occur."""
    rules = {
        "strength_schedule": (lambda v: 0.0 <= v <= 1.0, "between 0 and 1 (the share of the previous frame kept)"),
        "noise_schedule": (lambda v: 0.0 <= v, "0 or more"),
        "contrast_schedule": (lambda v: 0.0 <= v, "0 or more"),
        "cfg_scale_schedule": (lambda v: 0.0 <= v <= 30.0, "between 0 and 30"),
        "steps_schedule": (lambda v: 1 <= v <= 150, "between 1 and 150"),
        # cv2's Gaussian blur takes odd sizes only (Deforum crashes on an even one).
        "kernel_schedule": (lambda v: int(v) >= 0 and (int(v) == 0 or int(v) % 2 == 1),
                            "an odd number of pixels (or 0: the size from sigma)"),
        "sigma_schedule": (lambda v: v >= 0, "0 or more"),
    }
    for name, (fits, wanted) in rules.items():
        for t, value in enumerate(values[name]):
            if not math.isfinite(value) or not fits(value):
                raise DiffusionError(f"{name} gives {value:g} at frame {first + t}", f"keep it {wanted}")
