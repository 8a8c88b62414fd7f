# SPDX-License-Identifier: GPL-3.0-or-later
"""An animation's frame plans: schedules per frame (Deforum's t from the first frame),
cadence, seeds per diffused frame, prompts per frame, refusals before anything runs."""
import pytest

from engine.animation import AnimationSettings, plan_frames
from engine.errors import DiffusionError


def settings(**changes):
    fields = dict(frame_start=11, frame_end=16, seed=100, prompt="a forest", negative_prompt="blurry")
    fields.update(changes)
    return AnimationSettings(**fields)


def test_schedules_are_read_at_deforums_t_from_the_first_frame():
    plans = plan_frames(settings(strength_schedule="0:(0.5), 5:(0.75)", steps_schedule="0:(10), 2:(20)"))
    assert [p.frame for p in plans] == [11, 12, 13, 14, 15, 16]
    assert [p.strength for p in plans] == [0.5, 0.55, 0.6, 0.65, 0.7, 0.75]
    assert [p.steps for p in plans] == [10, 15, 20, 20, 20, 20]
    assert plans[0].denoise == 0.5


def test_cadence_diffuses_every_nth_frame_and_seeds_step_per_diffused_frame():
    plans = plan_frames(settings(cadence=3))
    assert [p.frame for p in plans if p.diffused] == [11, 14]
    assert [p.seed for p in plans] == [100, 100, 100, 101, 101, 101]  # ITER: one more per diffused frame
    fixed = plan_frames(settings(seed_behavior="FIXED"))
    assert {p.seed for p in fixed} == {100}


def test_prompts_per_frame_with_their_negative_parts():
    plans = plan_frames(settings(prompts_json='{"0": "a forest", "3": "a desert --neg snow"}'))
    assert [p.prompt for p in plans] == ["a forest"] * 3 + ["a desert"] * 3
    assert plans[0].negative_prompt == "blurry" and plans[3].negative_prompt == "snow, blurry"


def test_blended_prompts_carry_the_next_key_and_how_far_towards_it():
    plans = plan_frames(settings(prompts_json='{"0": "a forest", "4": "a desert --neg snow"}', blend_prompts=True))
    assert [p.prompt_blend[2] if p.prompt_blend else None for p in plans] == [None, 0.25, 0.5, 0.75, None, None]
    assert plans[1].prompt_blend[:2] == ("a desert", "snow, blurry")
    assert all(p.prompt_blend is None for p in plan_frames(settings(prompts_json='{"0": "a", "4": "b"}')))


def test_a_frame_with_no_denoising_step_keeps_the_warp():
    plans = plan_frames(settings(strength_schedule="0:(1.0), 2:(0.9)", steps_schedule="0:(5)"))
    assert [p.keeps_warp for p in plans] == [True, True, True, True, True, True]  # 5 x 0.1 < 1 step
    assert not plan_frames(settings(strength_schedule="0:(0.8)", steps_schedule="0:(5)"))[0].keeps_warp


@pytest.mark.parametrize("changes, message", [
    (dict(strength_schedule="0:(0.5), 3:(1.5)"), "strength_schedule gives 1.16667 at frame 13"),
    (dict(steps_schedule="0:(0)"), "steps_schedule gives 0 at frame 11"),
    (dict(noise_schedule="0:(0.1), 2:"), "noise_schedule"),
    (dict(frame_end=10), "has no frames"),
    (dict(kernel_schedule="0:(5), 5:(3)"), "kernel_schedule gives 4.6 at frame 12: keep it an odd number"),
    (dict(prompts_json='{"0": "a forest",}'), "not JSON|JSON"),
])
def test_bad_settings_are_refused_naming_the_schedule_and_frame(changes, message):
    with pytest.raises(DiffusionError, match=message):
        plan_frames(settings(**changes))
