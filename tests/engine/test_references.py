# SPDX-License-Identifier: GPL-3.0-or-later
"""Reference images through IP-Adapter on the smoke SD 1.5 and SDXL models: equal to plain
diffusers with `load_ip_adapter` (once per image) + `set_ip_adapter_scale` + `ip_adapter_image`,
in text to image and with a ControlNet; with regions too; adapters and image encoders that
do not fit are refused before anything is loaded."""
import os
import shutil

import numpy as np
import pytest
import torch
from plain_diffusers import plain_pipe
from PIL import Image

from engine import ControlUnit, DiffusionError, GenerationRequest, ReferenceImage, RegionPrompt
from engine.smoke_model import SMOKE_ADAPTER_FILE, ensure_smoke_ip_adapter

PROMPT, NEGATIVE = "a kettle on a stove", "blurry"


def picture(seed: int, size=(40, 56)) -> np.ndarray:
    """A smooth uint8 picture: the same bytes go to diffusers and (as floats) to the engine."""
    generator = np.random.default_rng(seed)
    coarse = generator.integers(0, 256, (4, 4, 3)).astype(np.float32)
    return np.asarray(Image.fromarray(coarse.astype(np.uint8)).resize(size[::-1], Image.BILINEAR))


def make_request(**changes) -> GenerationRequest:
    fields = dict(prompt=PROMPT, negative_prompt=NEGATIVE, width=64, height=64, steps=3, guidance=6.0, seed=11,
                  model="smoke")
    fields.update(changes)
    return GenerationRequest(**fields)


def references(*weights):
    return tuple(ReferenceImage(picture(index).astype(np.float32) / 255.0, weight)
                 for index, weight in enumerate(weights))


def with_adapter(pipe, model_cache, family, weights):
    folder = ensure_smoke_ip_adapter(model_cache, family)
    count = len(weights)
    pipe.load_ip_adapter([folder] * count, subfolder=[""] * count, weight_name=[SMOKE_ADAPTER_FILE] * count)
    pipe.set_ip_adapter_scale(list(weights))
    return pipe


def call(pipe, count, **extra):
    return pipe(PROMPT, negative_prompt=NEGATIVE, width=64, height=64, num_inference_steps=3, guidance_scale=6.0,
                generator=torch.Generator().manual_seed(11), output_type="np",
                ip_adapter_image=[Image.fromarray(picture(index)) for index in range(count)], **extra).images[0]


@pytest.mark.parametrize("model, family", [("smoke", "sd15"), ("smoke-sdxl", "sdxl")])
@pytest.mark.parametrize("weights", [(0.8,), (0.7, 0.3)])
def test_equal_to_diffusers_load_ip_adapter(smoke_engine, model_cache, model, family, weights):
    expected = call(with_adapter(plain_pipe(model_cache, family), model_cache, family, weights), len(weights))
    got = smoke_engine.generate(make_request(model=model, references=references(*weights))).images[0]
    np.testing.assert_allclose(got, expected, atol=1e-5)
    plain = smoke_engine.generate(make_request(model=model)).images[0]
    assert np.abs(got - plain).max() > 0.005  # the references do steer
    # Without references the adapter is unloaded: the image is the one without, bit for bit.
    again = smoke_engine.generate(make_request(model=model)).images[0]
    np.testing.assert_array_equal(again, plain)


def test_with_a_controlnet_and_with_regions(smoke_engine, model_cache, control_image):
    from diffusers import ControlNetModel

    from engine.smoke_model import ensure_smoke_controlnet
    controlnet = ControlNetModel.from_pretrained(ensure_smoke_controlnet(model_cache, "sd15", "depth"))
    pipe = with_adapter(plain_pipe(model_cache, "sd15", controlnet), model_cache, "sd15", (0.6,))
    expected = pipe(PROMPT, negative_prompt=NEGATIVE, image=Image.fromarray(control_image), width=96, height=64,
                    num_inference_steps=3, guidance_scale=6.0, controlnet_conditioning_scale=1.0,
                    generator=torch.Generator().manual_seed(11), output_type="np",
                    ip_adapter_image=[Image.fromarray(picture(0))]).images[0]
    unit = ControlUnit("depth", control_image)
    got = smoke_engine.generate(make_request(width=96, controls=(unit,), references=references(0.6))).images[0]
    np.testing.assert_allclose(got, expected, atol=1e-5)
    # A region with the main prompt's words keeps the references' effect, the image the same.
    half = np.zeros((64, 96), np.float32)
    half[:, :48] = 1.0
    same = smoke_engine.generate(make_request(width=96, controls=(unit,), references=references(0.6),
                                              regions=(RegionPrompt(PROMPT, half),))).images[0]
    np.testing.assert_allclose(same, expected, atol=1e-4)


def test_an_adapter_for_the_other_family_is_refused_naming_the_one_that_fits(smoke_engine, model_cache, tmp_path):
    other = ensure_smoke_ip_adapter(model_cache, "sdxl")
    loads = list(smoke_engine.loads)
    with pytest.raises(DiffusionError, match="not this SD 1.5 model.*ip-adapter_sd15.safetensors"):
        smoke_engine.generate(make_request(references=references(0.5),
                                           ip_adapter=os.path.join(other, SMOKE_ADAPTER_FILE)))
    assert smoke_engine.loads == loads


@pytest.mark.parametrize("case, words", [
    ("no encoder", "has no image encoder beside it"),
    ("wrong encoder", "gives 24-wide projection, the adapter takes 16"),
    ("pickle", "pickle"),
    ("missing", "does not exist"),
    ("offline hub", "not in the local cache and online access is off"),
])
def test_bad_adapters_are_refused_before_loading(smoke_engine, model_cache, tmp_path, case, words):
    from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection
    source = ensure_smoke_ip_adapter(model_cache, "sd15")
    folder = tmp_path / "adapter"
    folder.mkdir()
    spec = str(folder / "ip-adapter_test.safetensors")
    shutil.copy(os.path.join(source, SMOKE_ADAPTER_FILE), spec)
    if case == "wrong encoder":
        CLIPVisionModelWithProjection(CLIPVisionConfig(
            hidden_size=32, intermediate_size=37, num_attention_heads=4, num_hidden_layers=2, image_size=32,
            patch_size=8, projection_dim=24)).save_pretrained(str(folder / "image_encoder"))
    elif case == "pickle":
        spec = str(folder / "ip-adapter.bin")
        torch.save({"image_proj": {}, "ip_adapter": {}}, spec)
    elif case == "missing":
        spec = str(folder / "nothing.safetensors")
    elif case == "offline hub":
        spec = "someone/adapters/models/ip-adapter_sd15.safetensors"
    loads = list(smoke_engine.loads)
    with pytest.raises(DiffusionError, match=words):
        smoke_engine.generate(make_request(references=references(0.5), ip_adapter=spec))
    assert smoke_engine.loads == loads


def test_bad_references_are_refused(smoke_engine):
    with pytest.raises(DiffusionError, match="outside 0..2"):
        smoke_engine.generate(make_request(references=references(3.0)))
    with pytest.raises(DiffusionError, match="HxWx3 float image"):
        smoke_engine.generate(make_request(references=(ReferenceImage(np.zeros((8, 8, 4), np.float32)),)))


ADAPTER_DOWNLOAD_CHILD = r"""
import json, sys
sys.path.insert(0, sys.argv[1])
from engine.references import resolve_adapter

events = []
source = resolve_adapter("someone/adapters/models/ip-adapter_sd15.safetensors", "sd15", 32, sys.argv[2],
                         allow_online=True, allow_pickle=False, smoke=False,
                         on_progress=lambda p: events.append(p.message))
print(json.dumps({"path": source.path, "encoder": source.encoder, "events": events}))
"""


def test_a_hub_adapter_downloads_with_its_image_encoder_and_then_works_offline(smoke_engine, model_cache, sandbox,
                                                                             tmp_path):
    """h94's layout on a local hub: the adapter file and models/image_encoder are fetched, not
    the repository's other files; then, offline, the adapter comes from the cache."""
    import json
    import subprocess
    import sys

    from local_hub import LocalHub

    source = ensure_smoke_ip_adapter(model_cache, "sd15")
    repo = tmp_path / "repo"
    shutil.copytree(os.path.join(source, "image_encoder"), repo / "models" / "image_encoder")
    shutil.copy(os.path.join(source, SMOKE_ADAPTER_FILE), repo / "models" / "ip-adapter_sd15.safetensors")
    (repo / "models" / "ip-adapter-plus_sd15.bin").write_bytes(b"not wanted")
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    with LocalHub({"someone/adapters": str(repo)}) as hub:
        env = dict(os.environ, HF_ENDPOINT=hub.url, HF_HOME=os.path.join(sandbox, "huggingface"))
        env.pop("HF_HUB_OFFLINE")
        out = subprocess.run([sys.executable, "-c", ADAPTER_DOWNLOAD_CHILD, root, model_cache], env=env,
                             capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    got = json.loads(out.stdout.strip().splitlines()[-1])
    assert "models--someone--adapters" in got["path"] and got["encoder"].endswith("models/image_encoder")
    assert got["events"] and got["events"][-1].startswith("Downloading someone/adapters: ")
    assert not os.path.exists(os.path.join(os.path.dirname(got["path"]), "ip-adapter-plus_sd15.bin"))

    spec = "someone/adapters/models/ip-adapter_sd15.safetensors"
    offline = smoke_engine.generate(make_request(references=references(0.5), ip_adapter=spec))
    assert got["path"] in smoke_engine.loads
    default = smoke_engine.generate(make_request(references=references(0.5)))  # the same weights, from the smoke folder
    np.testing.assert_array_equal(offline.images[0], default.images[0])


def test_attention_slicing_keeps_the_adapter_layers_and_unloading_works(smoke_engine, model_cache):
    """Slicing replaces attention processors; the adapter's stay (else the references would be
    dropped silently), and going without references afterwards unloads cleanly."""
    from engine.memory import MemoryOptions

    sliced = MemoryOptions(attention_slicing="on")
    expected = call(with_adapter(plain_pipe(model_cache, "sd15"), model_cache, "sd15", (0.8,)), 1)
    got = smoke_engine.generate(make_request(references=references(0.8), memory=sliced)).images[0]
    np.testing.assert_allclose(got, expected, atol=1e-4)
    plain = smoke_engine.generate(make_request(memory=sliced)).images[0]
    again = smoke_engine.generate(make_request()).images[0]
    np.testing.assert_allclose(plain, again, atol=1e-5)
    assert np.abs(got - plain).max() > 0.005
