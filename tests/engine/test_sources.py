# SPDX-License-Identifier: GPL-3.0-or-later
"""Model sources: single-file checkpoints (SD 1.5 and SDXL, told apart by their tensors),
pickle files refused unless allowed, damaged files refused with the engine keeping its
model, and hub downloads with progress through huggingface_hub against a local hub."""
import json
import os
import re
import shutil
import subprocess
import sys

import numpy as np
import pytest
import torch

from checkpoint_files import single_file_state_dict
from engine import ControlUnit, DiffusionError, Engine, GenerationRequest
from engine.models import check_available
from engine.smoke_model import ensure_smoke_controlnet, ensure_smoke_pipeline
from local_hub import LocalHub

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PROMPT = "a red barn in a snowy field"


def make_request(**changes) -> GenerationRequest:
    fields = dict(prompt=PROMPT, width=64, height=64, steps=2, guidance=5.0, seed=11, model="smoke")
    fields.update(changes)
    return GenerationRequest(**fields)


def smoke_configs(model_cache) -> dict[str, str]:
    """The smoke models' own folders as the configs their single-file checkpoints load with."""
    return {family: ensure_smoke_pipeline(model_cache, family) for family in ("sd15", "sdxl")}


@pytest.fixture(scope="module")
def checkpoints(model_cache, tmp_path_factory) -> dict[str, str]:
    """The smoke models saved as single-file checkpoints, in the original layout. The SDXL
    one is named like an SD 1.5 file: the family must come from the tensors."""
    from diffusers import StableDiffusionPipeline, StableDiffusionXLPipeline
    from safetensors.torch import save_file

    folder = tmp_path_factory.mktemp("checkpoints")
    paths = {"sd15": str(folder / "tiny-sd15.safetensors"), "sdxl": str(folder / "v1-5-pruned-emaonly.safetensors")}
    for family, cls in (("sd15", StableDiffusionPipeline), ("sdxl", StableDiffusionXLPipeline)):
        pipe = cls.from_pretrained(ensure_smoke_pipeline(model_cache, family))
        save_file(single_file_state_dict(pipe), paths[family])
    return paths


# Tensors scaled in the perturbed checkpoints: some of each part (UNet, VAE, text encoders), so
# a part taken from the configuration folder instead of the file gives another image.
PERTURBED = {
    r"model\.diffusion_model\..*attn2\.to_k\.weight": 1.5,  # the UNet's cross-attention
    r"model\.diffusion_model\.out\.2\.weight": 0.8,  # the UNet's last convolution
    r"first_stage_model\.decoder\.conv_out\.weight": 0.9,
    r"(cond_stage_model|conditioner\.embedders\.0)\.transformer\.text_model\.encoder\.layers\.0\.self_attn\.q_proj"
    r"\.weight": 1.3,
    r"conditioner\.embedders\.1\.model\.transformer\.resblocks\.0\.attn\.in_proj_weight": 1.3,  # SDXL only
}


def perturbed(state_dict: dict[str, torch.Tensor], family: str) -> dict[str, torch.Tensor]:
    """The checkpoint with the PERTURBED tensors scaled: weights no diffusers folder here has."""
    out = dict(state_dict)
    for pattern, factor in PERTURBED.items():
        keys = [key for key in out if re.fullmatch(pattern, key)]
        assert keys or (family == "sd15" and r"embedders\.1" in pattern), f"nothing matches {pattern}"
        for key in keys:
            out[key] = (out[key] * factor).contiguous()
    return out


@pytest.fixture(scope="module")
def perturbed_checkpoints(checkpoints, tmp_path_factory) -> dict[str, str]:
    """The smoke checkpoints with some tensors of each part scaled (see PERTURBED)."""
    from safetensors.torch import load_file, save_file

    folder = tmp_path_factory.mktemp("perturbed")
    paths = {family: str(folder / f"perturbed-{family}.safetensors") for family in checkpoints}
    for family, path in paths.items():
        save_file(perturbed(load_file(checkpoints[family]), family), path)
    return paths


def plain_single_file(model_cache, family: str, path: str):
    """diffusers' own `from_single_file` on `path`, with the smoke folder as its configuration."""
    from diffusers import StableDiffusionPipeline, StableDiffusionXLPipeline

    extra = dict(safety_checker=None, feature_extractor=None, requires_safety_checker=False) \
        if family == "sd15" else {}
    cls = StableDiffusionXLPipeline if family == "sdxl" else StableDiffusionPipeline
    pipe = cls.from_single_file(path, config=smoke_configs(model_cache)[family], local_files_only=True, **extra)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def plain_call(pipe) -> np.ndarray:
    """make_request()'s generation, as a plain diffusers call."""
    return pipe(PROMPT, width=64, height=64, num_inference_steps=2, guidance_scale=5.0,
                generator=torch.Generator().manual_seed(11), output_type="np").images[0]


def assert_same_weights(ours, theirs) -> None:
    """Every tensor of the two pipelines' UNet, VAE and text encoder(s) equal."""
    parts = [name for name in ("unet", "vae", "text_encoder", "text_encoder_2") if getattr(theirs, name, None)]
    for name in parts:
        mine, reference = getattr(ours, name).state_dict(), getattr(theirs, name).state_dict()
        assert mine.keys() == reference.keys(), name
        different = [key for key in reference if not torch.equal(mine[key], reference[key])]
        assert different == [], f"{name}: {different[:3]}"


@pytest.mark.parametrize("family, smoke", [("sd15", "smoke"), ("sdxl", "smoke-sdxl")])
def test_a_single_file_checkpoint_gives_the_same_image_as_its_diffusers_folder(smoke_engine, model_cache, checkpoints,
                                                                              family, smoke):
    # The checkpoint holds the folder's weights: this shows the layout is read right.
    expected = smoke_engine.generate(make_request(model=smoke)).images[0]
    configs = smoke_configs(model_cache)
    result = smoke_engine.generate(make_request(model=checkpoints[family], single_file_configs=configs))
    assert result.family == family
    assert smoke_engine.loads[-1] == checkpoints[family]
    assert np.array_equal(result.images[0], expected)


@pytest.mark.parametrize("family, smoke", [("sd15", "smoke"), ("sdxl", "smoke-sdxl")])
def test_a_single_file_checkpoints_own_weights_are_used_as_diffusers_from_single_file_does(
        smoke_engine, model_cache, perturbed_checkpoints, family, smoke):
    path = perturbed_checkpoints[family]
    folder_image = smoke_engine.generate(make_request(model=smoke)).images[0]
    result = smoke_engine.generate(make_request(model=path, single_file_configs=smoke_configs(model_cache)))
    assert result.family == family and smoke_engine.loads[-1] == path
    # Its weights are not the folder's, and they are what the image is made with...
    assert not np.array_equal(result.images[0], folder_image)
    plain = plain_single_file(model_cache, family, path)
    assert_same_weights(smoke_engine.pipelines.current_base, plain)
    # ...bit for bit as diffusers' own single-file loading makes it (same CPU, same float32 operations).
    assert np.array_equal(result.images[0], plain_call(plain))


def test_a_single_file_checkpoint_offline_without_its_configuration_says_what_to_do(model_cache, checkpoints):
    engine = Engine(model_cache)
    with pytest.raises(DiffusionError, match="The SD 1.5 configuration stable-diffusion-v1-5/stable-diffusion-v1-5 "
                                             "is not in the local cache and online access is off") as error:
        engine.generate(make_request(model=checkpoints["sd15"]))
    assert error.value.fix.startswith("tiny-sd15.safetensors loads with the configuration files of "
                                      "stable-diffusion-v1-5/stable-diffusion-v1-5")
    assert "Allow Online Access" in error.value.fix and "local SD 1.5 diffusers folder" in error.value.fix
    assert engine.loads == []
    # The operators' quick check (no torch) says the same before a job starts.
    with pytest.raises(DiffusionError, match="is not in the local cache and online access is off"):
        check_available(checkpoints["sd15"], allow_online=False)
    check_available(checkpoints["sd15"], allow_online=False, single_file_configs=smoke_configs(model_cache))


def test_a_configuration_of_another_family_or_size_is_refused(model_cache, checkpoints, tmp_path):
    engine = Engine(model_cache)
    configs = smoke_configs(model_cache)
    with pytest.raises(DiffusionError, match="tiny-sd15.safetensors is SD 1.5 but its configuration .* is SDXL"):
        engine.generate(make_request(model=checkpoints["sd15"], single_file_configs={"sd15": configs["sdxl"]}))
    wider = tmp_path / "wider-config"
    shutil.copytree(configs["sd15"], wider)
    unet_config = json.loads((wider / "unet" / "config.json").read_text())
    unet_config["block_out_channels"] = [320, 640]
    (wider / "unet" / "config.json").write_text(json.dumps(unet_config))
    with pytest.raises(DiffusionError, match="does not fit the checkpoint tiny-sd15.safetensors: its UNet is 320 "
                                             "channels wide .* the checkpoint's is 32"):
        engine.generate(make_request(model=checkpoints["sd15"], single_file_configs={"sd15": str(wider)}))
    assert engine.loads == []


def fake_checkpoint(path, keys: dict[str, tuple[int, ...]]) -> str:
    from safetensors.torch import save_file

    save_file({key: torch.zeros(shape) for key, shape in keys.items()}, str(path))
    return str(path)


UNET_IN = "model.diffusion_model.input_blocks.0.0.weight"
LABEL_EMB = "model.diffusion_model.label_emb.0.0.weight"


@pytest.mark.parametrize("keys, words", [
    ({"lora_unet_down_blocks_0_attentions_0_proj_in.lora_down.weight": (4, 8)}, "looks like a LoRA"),
    ({"control_model.input_hint_block.0.weight": (16, 3, 3, 3)}, "looks like a ControlNet"),
    ({UNET_IN: (8, 4, 3, 3), "cond_stage_model.model.token_embedding.weight": (4, 8)}, "Stable Diffusion 2.x"),
    ({UNET_IN: (8, 9, 3, 3), "cond_stage_model.transformer.text_model.x.weight": (4, 8)}, "an inpainting model"),
    ({UNET_IN: (8, 4, 3, 3), LABEL_EMB: (8, 8), "conditioner.embedders.0.model.ln_final.weight": (8,)},
     "an SDXL refiner"),
    ({UNET_IN: (8, 4, 3, 3)}, "a UNet without its text encoder"),
])
def test_other_kinds_of_files_are_named_and_refused_before_loading(model_cache, tmp_path, keys, words):
    engine = Engine(model_cache)
    with pytest.raises(DiffusionError, match=words):
        engine.generate(make_request(model=fake_checkpoint(tmp_path / "model.safetensors", keys)))
    assert engine.loads == []


def test_pickle_checkpoints_are_refused_unless_allowed(model_cache, perturbed_checkpoints, tmp_path):
    from safetensors.torch import load_file

    pickled = tmp_path / "tiny-sd15.ckpt"
    torch.save({"state_dict": load_file(perturbed_checkpoints["sd15"])}, pickled)  # wrapped, as old .ckpt files are
    engine = Engine(model_cache)
    configs = smoke_configs(model_cache)
    refused = r"tiny-sd15.ckpt is a pickle file \(pickle files can run any code"
    with pytest.raises(DiffusionError, match=refused) as error:
        engine.generate(make_request(model=str(pickled), single_file_configs=configs))
    assert "Allow pickle files" in error.value.fix
    with pytest.raises(DiffusionError, match="pickle file"):
        check_available(str(pickled), allow_online=False)
    assert engine.loads == []

    allowed = engine.generate(make_request(model=str(pickled), single_file_configs=configs, allow_pickle=True))
    assert engine.loads == [str(pickled)]
    # The file's own (perturbed) weights, as diffusers' from_single_file reads the pickle.
    plain = plain_single_file(model_cache, "sd15", str(pickled))
    assert_same_weights(engine.pipelines.current_base, plain)
    assert np.array_equal(allowed.images[0], plain_call(plain))
    assert not np.array_equal(allowed.images[0], engine.generate(make_request()).images[0])


def test_a_folder_with_only_pickle_weights_is_refused_unless_allowed(model_cache, tmp_path):
    from safetensors.torch import load_file

    folder = tmp_path / "pickled-model"
    shutil.copytree(ensure_smoke_pipeline(model_cache, "sd15"), folder)
    unet = folder / "unet"
    torch.save(load_file(unet / "diffusion_pytorch_model.safetensors"), unet / "diffusion_pytorch_model.bin")
    (unet / "diffusion_pytorch_model.safetensors").unlink()
    engine = Engine(model_cache)
    with pytest.raises(DiffusionError, match="has only pickle weights in unet"):
        engine.generate(make_request(model=str(folder)))
    assert engine.loads == []
    assert engine.generate(make_request(model=str(folder), allow_pickle=True)).images[0].shape == (64, 64, 3)


def truncated_copy(source: str, target) -> str:
    data = open(source, "rb").read()
    with open(target, "wb") as f:
        f.write(data[: len(data) * 2 // 3])
    return str(target)


def test_damaged_weights_are_refused_and_the_engine_keeps_its_model(smoke_engine, model_cache, checkpoints,
                                                                    control_image, tmp_path):
    base = smoke_engine.generate(make_request()).images[0]
    loaded = smoke_engine.pipelines.current_base
    loads = list(smoke_engine.loads)

    single = truncated_copy(checkpoints["sd15"], tmp_path / "interrupted.safetensors")
    with pytest.raises(DiffusionError, match="interrupted.safetensors is damaged: .* truncated or has bytes missing"):
        smoke_engine.generate(make_request(model=single, single_file_configs=smoke_configs(model_cache)))

    folder = tmp_path / "folder-with-a-damaged-unet"
    shutil.copytree(ensure_smoke_pipeline(model_cache, "sd15"), folder)
    unet_weights = folder / "unet" / "diffusion_pytorch_model.safetensors"
    truncated_copy(str(unet_weights), unet_weights)
    with pytest.raises(DiffusionError, match="diffusion_pytorch_model.safetensors is damaged") as error:
        smoke_engine.generate(make_request(model=str(folder)))
    assert "download it again" in error.value.fix

    controlnet = tmp_path / "damaged-controlnet"
    shutil.copytree(ensure_smoke_controlnet(model_cache, "sd15", "depth"), controlnet)
    (controlnet / "diffusion_pytorch_model.safetensors").write_bytes(b"<!DOCTYPE html><html>Sign in</html>")
    depth = np.ascontiguousarray(control_image[:, :64])
    with pytest.raises(DiffusionError, match="is damaged: it is not a safetensors file.*a web page"):
        smoke_engine.generate(make_request(controls=(ControlUnit("depth", depth, model=str(controlnet)),)))

    # Nothing was loaded or let go: the same model, and the same image without a reload.
    assert smoke_engine.loads == loads
    assert smoke_engine.pipelines.current_base is loaded
    assert np.array_equal(smoke_engine.generate(make_request()).images[0], base)


# Runs in a child process: huggingface_hub reads HF_ENDPOINT and HF_HUB_OFFLINE when imported.
# The cancelled generation stops in its download; the plan then downloads the whole model
# (a generation after it would only import diffusers here too: the parent does that part).
DOWNLOAD_CHILD = r"""
import json, sys
sys.path.insert(0, sys.argv[1])
from engine import CancelToken, Cancelled, Engine, GenerationRequest

engine = Engine(sys.argv[2])
request = GenerationRequest("a red barn in a snowy field", width=64, height=64, steps=2, guidance=5.0, seed=11,
                            model="tiny/smoke-sd15", allow_online=True)
token = CancelToken()
seen = []
def cancel_at_once(progress):
    seen.append(progress.message)
    token.cancel()
try:
    engine.generate(request, on_progress=cancel_at_once, cancel=token)
    print(json.dumps({"cancelled": False}))
except Cancelled:
    print(json.dumps({"cancelled": True, "events": seen, "loads": engine.loads}))
events = []
plan = engine.plan(request, on_progress=lambda p: events.append([p.step, p.total, p.message]))
print(json.dumps({"events": events, "path": plan.base.path, "family": plan.base.family}))
"""


def test_a_hub_model_downloads_with_progress_and_cancels(smoke_engine, model_cache, sandbox):
    folder = ensure_smoke_pipeline(model_cache, "sd15")
    # Slow enough (~1 s) that the cancel lands mid-download.
    with LocalHub({"tiny/smoke-sd15": folder}, pause_per_chunk=0.005) as hub:
        env = dict(os.environ, HF_ENDPOINT=hub.url, HF_HOME=os.path.join(sandbox, "huggingface"))
        env.pop("HF_HUB_OFFLINE")
        out = subprocess.run([sys.executable, "-c", DOWNLOAD_CHILD, REPO_ROOT, model_cache], env=env,
                             capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    cancelled, finished = (json.loads(line) for line in out.stdout.strip().splitlines()[-2:])

    assert cancelled["cancelled"] and cancelled["loads"] == []
    assert cancelled["events"] == ["Downloading tiny/smoke-sd15: 0.0 of 8.2 MB"]

    messages = [event[2] for event in finished["events"]]
    assert all(message.startswith("Downloading tiny/smoke-sd15: ") for message in messages)
    assert messages[-1] == "Downloading tiny/smoke-sd15: 8.2 of 8.2 MB"
    done = [float(message.split(": ")[1].split()[0]) for message in messages]
    assert done == sorted(done)
    assert finished["family"] == "sd15"
    assert "models--tiny--smoke-sd15" in finished["path"]  # in the standard Hugging Face cache

    # Here, offline, the model comes from that cache: no download, and the smoke model's image.
    offline = smoke_engine.generate(make_request(model="tiny/smoke-sd15"))
    assert smoke_engine.loads[-1] == finished["path"]
    assert np.array_equal(offline.images[0], smoke_engine.generate(make_request()).images[0])


def test_an_unknown_hub_repository_says_so(model_cache, sandbox):
    child = (f"import sys; sys.path.insert(0, {REPO_ROOT!r})\n"
             "from engine import models, DiffusionError\n"
             "try:\n"
             f"    models.resolve_base('nobody/nothing', {model_cache!r}, allow_online=True)\n"
             "except DiffusionError as error:\n"
             "    print(error)\n")
    with LocalHub({}) as hub:
        env = dict(os.environ, HF_ENDPOINT=hub.url, HF_HOME=os.path.join(sandbox, "huggingface"))
        env.pop("HF_HUB_OFFLINE")
        out = subprocess.run([sys.executable, "-c", child], env=env, capture_output=True, text=True, timeout=120)
    assert "The model nobody/nothing does not exist on the hub (or it is private)" in out.stdout, out.stderr[-2000:]


def test_the_engine_never_runs_code_from_a_model_repository():
    # trust_remote_code and custom pipelines run Python shipped with a model: never passed anywhere.
    engine_dir = os.path.join(REPO_ROOT, "engine")
    for name in os.listdir(engine_dir):
        if name.endswith(".py"):
            text = open(os.path.join(engine_dir, name), encoding="utf-8").read()
            assert "trust_remote_code" not in text and "custom_pipeline" not in text, name


def test_model_suggestions_list_smoke_defaults_and_cached_pipelines(tmp_path, monkeypatch):
    from huggingface_hub import constants

    from engine.models import model_suggestions

    cache = tmp_path / "hub"
    (cache / "models--someone--my-pipeline" / "snapshots" / "abc").mkdir(parents=True)
    (cache / "models--someone--my-pipeline" / "snapshots" / "abc" / "model_index.json").write_text("{}")
    (cache / "models--someone--a-controlnet" / "snapshots" / "abc").mkdir(parents=True)
    (cache / "models--someone--a-controlnet" / "snapshots" / "abc" / "config.json").write_text("{}")
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))
    specs = [spec for spec, _ in model_suggestions()]
    assert specs[:2] == ["smoke", "smoke-sdxl"]
    assert "stable-diffusion-v1-5/stable-diffusion-v1-5" in specs
    assert "someone/my-pipeline" in specs
    assert "someone/a-controlnet" not in specs  # not a pipeline: not a base model
