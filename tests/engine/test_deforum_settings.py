# SPDX-License-Identifier: GPL-3.0-or-later
"""Deforum's settings file read into ours: supported fields mapped, the rest listed."""
import json

import pytest

from engine.deforum_settings import read_deforum_settings
from engine.errors import DiffusionError

# The shape of a settings .txt written by sd-webui-deforum (a subset of its fields, with
# the names and value formats it writes).
DEFORUM = {
    "W": 512, "H": 512, "seed": 1234, "sampler": "Euler a", "steps": 25, "scale": 7,
    "animation_mode": "3D", "max_frames": 120, "border": "replicate",
    "strength_schedule": "0: (0.65)", "noise_schedule": "0: (0.065)", "contrast_schedule": "0: (1.0)",
    "cfg_scale_schedule": "0: (7)", "steps_schedule": "0: (25)", "seed_schedule": "0:(s), 1:(-1)",
    "amount_schedule": "0: (0.1)", "kernel_schedule": "0: (5)", "sigma_schedule": "0: (1.0)",
    "threshold_schedule": "0: (0.0)", "translation_z": "0: (1.75)", "rotation_3d_y": "0: (0)",
    "zoom": "0:(1.0025+0.002*sin(1.25*3.14*t/30))", "fov_schedule": "0: (70)",
    "seed_behavior": "iter", "seed_iter_N": 1, "color_coherence": "Match Frame 0 LAB",
    "diffusion_cadence": "2", "use_init": False, "use_depth_warping": True, "midas_weight": 0.2,
    "prompts": {"0": "a forest", "60": "a desert --neg snow"}, "batch_name": "Deforum",
}


def test_supported_fields_are_mapped_and_the_rest_listed():
    read = read_deforum_settings(json.dumps(DEFORUM))
    assert read.values["strength_schedule"] == "0: (0.65)"
    assert read.values["zoom"] == "0:(1.0025+0.002*sin(1.25*3.14*t/30))"
    assert read.values["seed_behavior"] == "ITER" and read.values["color_coherence"] == "LAB"
    assert read.values["diffusion_cadence"] == 2 and read.values["use_init"] is False
    assert (read.values["frame_start"], read.values["frame_end"]) == (1, 120)
    assert read.main == {"seed": 1234, "steps": 25, "guidance": 7, "width": 512, "height": 512,
                         "scheduler": "euler_a"}
    assert json.loads(read.prompts) == {"0": "a forest", "60": "a desert --neg snow"}
    assert read.unsupported == ["animation_mode", "border", "midas_weight", "use_depth_warping"]


def test_colour_coherence_and_seed_behaviour_names_of_every_version():
    for theirs, ours in (("Match Frame 0 HSV", "HSV"), ("None", "NONE"), ("RGB", "RGB")):
        assert read_deforum_settings(json.dumps({"color_coherence": theirs})).values["color_coherence"] == ours
    for theirs in ("iter", "fixed", "random", "ladder", "alternate", "schedule"):
        read = read_deforum_settings(json.dumps({"seed_behavior": theirs}))
        assert read.values["seed_behavior"] == theirs.upper()
    unknown = read_deforum_settings(json.dumps({"color_coherence": "Video Input"}))
    assert "color_coherence" not in unknown.values and unknown.unsupported == ["color_coherence"]


def test_a_file_that_is_not_json_is_refused_with_where():
    with pytest.raises(DiffusionError, match="not JSON: Expecting .* line 2, column"):
        read_deforum_settings('{"W": 512,\n "H": }')
    with pytest.raises(DiffusionError, match="not a JSON object"):
        read_deforum_settings("[1, 2]")
