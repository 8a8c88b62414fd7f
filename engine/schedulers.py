# SPDX-License-Identifier: GPL-3.0-or-later
"""Schedulers (samplers), swapped per generation without reloading anything.

Each is diffusers' `<Class>.from_config(<the model's own scheduler config>, **options)`,
the documented way to change a pipeline's scheduler, so a generation equals a plain
diffusers call that does the same. "default" is the model's own scheduler object, as
loaded. A scheduler is built fresh per generation: they keep state between steps, and a
fresh one leaves nothing behind for the next generation.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from .errors import DiffusionError


@dataclass(frozen=True)
class SchedulerChoice:
    label: str             # what the person sees
    class_name: str        # the diffusers scheduler class
    options: dict = field(default_factory=dict)  # overrides of the model's scheduler config


SCHEDULERS: dict[str, SchedulerChoice] = {
    "euler": SchedulerChoice("Euler", "EulerDiscreteScheduler"),
    "euler_a": SchedulerChoice("Euler ancestral", "EulerAncestralDiscreteScheduler"),
    "dpmpp_2m": SchedulerChoice("DPM++ 2M", "DPMSolverMultistepScheduler",
                                {"algorithm_type": "dpmsolver++", "use_karras_sigmas": False}),
    "dpmpp_2m_karras": SchedulerChoice("DPM++ 2M Karras", "DPMSolverMultistepScheduler",
                                       {"algorithm_type": "dpmsolver++", "use_karras_sigmas": True}),
    "dpmpp_2m_sde_karras": SchedulerChoice("DPM++ 2M SDE Karras", "DPMSolverMultistepScheduler",
                                           {"algorithm_type": "sde-dpmsolver++", "use_karras_sigmas": True}),
    "ddim": SchedulerChoice("DDIM", "DDIMScheduler"),
    "unipc": SchedulerChoice("UniPC", "UniPCMultistepScheduler"),
    "lcm": SchedulerChoice("LCM", "LCMScheduler"),
    "tcd": SchedulerChoice("TCD", "TCDScheduler"),
    # The spacing few-step LoRAs were distilled with: SDXL-Lightning (Euler) and Hyper-SD (DDIM).
    "euler_trailing": SchedulerChoice("Euler (trailing)", "EulerDiscreteScheduler", {"timestep_spacing": "trailing"}),
    "ddim_trailing": SchedulerChoice("DDIM (trailing)", "DDIMScheduler", {"timestep_spacing": "trailing"}),
}

SCHEDULER_NAMES = ("default", *SCHEDULERS)


def check_scheduler(name: str) -> None:
    if name not in SCHEDULER_NAMES:
        raise DiffusionError(f"Unknown scheduler '{name}'",
                             f"pick one of: {', '.join(SCHEDULER_NAMES)}")


def make_scheduler(name: str, default):
    """The scheduler `name` for a model whose own scheduler is `default`."""
    check_scheduler(name)
    if name == "default":
        return default
    import diffusers

    choice = SCHEDULERS[name]
    return getattr(diffusers, choice.class_name).from_config(default.config, **choice.options)
