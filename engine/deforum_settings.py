# SPDX-License-Identifier: GPL-3.0-or-later
"""Deforum's settings file (the JSON `.txt` it writes beside its frames) read into ours.

`read_deforum_settings(text)` returns the values of the fields we support, under our
names (Deforum's, mostly), and the names of those we do not, for the report. Nothing is
applied here: the operator sets them on `scene.scene_diffusion.animation` (and the main
settings) on the main thread.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field

from .errors import DiffusionError

__all__ = ["DeforumSettings", "read_deforum_settings"]

# Schedules kept as their text, verbatim.
SCHEDULES = ("strength_schedule", "noise_schedule", "contrast_schedule", "cfg_scale_schedule", "steps_schedule",
             "seed_schedule", "amount_schedule", "kernel_schedule", "sigma_schedule", "threshold_schedule",
             "translation_x", "translation_y", "translation_z", "rotation_3d_x", "rotation_3d_y", "rotation_3d_z",
             "zoom", "fov_schedule")
SEED_BEHAVIOURS = {"iter": "ITER", "fixed": "FIXED", "random": "RANDOM", "ladder": "LADDER",
                   "alternate": "ALTERNATE", "schedule": "SCHEDULE"}
# Deforum's colour coherence names (they changed over versions) -> ours.
COLOUR_COHERENCE = {"none": "NONE", "match frame 0 lab": "LAB", "match frame 0 hsv": "HSV",
                    "match frame 0 rgb": "RGB", "lab": "LAB", "hsv": "HSV", "rgb": "RGB"}
# Fields that describe Deforum's own run or UI rather than the frames, read silently.
IGNORED = {"batch_name", "outdir", "timestring", "filename_format", "save_settings", "save_sample",
           "display_samples", "save_sample_per_step", "show_sample_per_step", "sd_model_name", "sd_model_hash",
           "deforum_git_commit_id", "n_batch", "restore_faces", "tiling", "W", "H", "seed",
           "prompts", "positive_prompts", "negative_prompts", "animation_prompts", "animation_prompts_positive",
           "animation_prompts_negative", "max_frames", "steps", "scale", "prompt", "negative_prompt"}


@dataclass
class DeforumSettings:
    """values: our animation setting -> value; main: the main settings (seed, size, steps,
    guidance, scheduler); prompts: Deforum's prompts JSON (for a Text datablock) or "";
    unsupported: Deforum fields we do not use (sorted)."""
    values: dict = field(default_factory=dict)
    main: dict = field(default_factory=dict)
    prompts: str = ""
    unsupported: list[str] = field(default_factory=list)


def read_deforum_settings(text: str) -> DeforumSettings:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as error:
        raise DiffusionError(f"The Deforum settings are not JSON: {error.msg} at line {error.lineno}, "
                             f"column {error.colno}", "pick the settings .txt Deforum wrote beside its frames"
                             ) from None
    if not isinstance(data, dict):
        raise DiffusionError("The Deforum settings are not a JSON object", "pick the settings .txt Deforum wrote")
    result = DeforumSettings()
    used = set(IGNORED)
    for name in SCHEDULES:
        if name in data:
            result.values[name] = str(data[name])
            used.add(name)
    if "seed_behavior" in data:
        behaviour = SEED_BEHAVIOURS.get(str(data["seed_behavior"]).strip().lower())
        if behaviour:
            result.values["seed_behavior"] = behaviour
            used.add("seed_behavior")
    for ours, theirs in (("seed_iter_N", "seed_iter_N"), ("diffusion_cadence", "diffusion_cadence")):
        if theirs in data:
            result.values[ours] = int(data[theirs])
            used.add(theirs)
    if "color_coherence" in data:
        mode = COLOUR_COHERENCE.get(str(data["color_coherence"]).strip().lower())
        if mode:
            result.values["color_coherence"] = mode
            used.add("color_coherence")
    if "use_init" in data:
        result.values["use_init"] = bool(data["use_init"])
        used.add("use_init")
    if "max_frames" in data:
        result.values["frame_end"] = int(data["max_frames"])
        result.values["frame_start"] = 1
    if "resume_from_timestring" in data:
        result.values["resume"] = bool(data["resume_from_timestring"])
        used.add("resume_from_timestring")
    for ours, theirs in (("seed", "seed"), ("steps", "steps"), ("guidance", "scale"), ("width", "W"),
                         ("height", "H")):
        if theirs in data and data[theirs] not in (None, ""):
            result.main[ours] = data[theirs]
    if "sampler" in data:
        # A1111's sampler names are our schedulers' labels ("Euler a", "DPM++ 2M Karras", ...).
        from .schedulers import SCHEDULERS
        wanted = str(data["sampler"]).strip().lower().replace("euler a", "euler ancestral")
        found = [name for name, choice in SCHEDULERS.items() if choice.label.lower() == wanted]
        if found:
            result.main["scheduler"] = found[0]
            used.add("sampler")
    prompts = data.get("prompts", data.get("animation_prompts"))
    if isinstance(prompts, dict):
        result.prompts = json.dumps(prompts, indent=1)
    elif isinstance(prompts, str):
        result.prompts = prompts
    result.unsupported = sorted(name for name in data if name not in used)
    return result
