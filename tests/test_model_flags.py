"""`--natten` everywhere a user can ask for it: the commands, best-of-N, manifests, flows and the worker;
and the reference's other model flags, each of which works or is a clear error.

The real sparse-attention checkpoints (2B/14B) cannot run here: these tests check what each entry point
loads and that every combination without a checkpoint is a clear error. The attention itself is tested
in test_sparse_attention.py; a generation with real weights is marked `weights`.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from cosmos_core import media
from cosmos_core.bestofn_command import bestofn_main
from cosmos_core.cli import text2image_main, text2world_main, video2world_main
from cosmos_core.dit import dit_config
from cosmos_core.models import download_command
from cosmos_core.pipelines.base import resolve_preset
from cosmos_core.sparse_attention import NATTEN_PATTERNS
from cosmos_core.worker import main as worker_main
from flows.params import BestOfNParameters, VideoBatchParameters
from manifests import ModelSpec, plan_shards, read_manifest, write_shard
from manifests.presets import PresetError, video2world_preset

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    shutil.copytree(REPO / "assets", tmp_path / "assets")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("COSMOS_CHECKPOINT_DIR", str(tmp_path / "checkpoints"))  # empty
    return tmp_path


@pytest.mark.parametrize("size", ["2B", "14B"])
@pytest.mark.parametrize("fps", [10, 16])
def test_natten_presets_load_the_sparse_files_and_patterns(size, fps):
    preset = video2world_preset(size, "720", fps, natten=True)
    assert preset.dit_file == f"model-720p-{fps}fps-natten.pt"
    assert preset.repo_id == f"nvidia/Cosmos-Predict2-{size}-Video2World"
    assert preset.num_frames == {10: 61, 16: 93}[fps]
    cfg, dense = dit_config(preset.dit), dit_config(f"{size}-Video2World")
    assert cfg.neighborhoods == NATTEN_PATTERNS[size]
    assert cfg.__dict__ | {"neighborhoods": None} == dense.__dict__  # same network otherwise
    assert download_command(preset).endswith(f"--resolution 720 --fps {fps} --natten")
    assert not video2world_preset(size, "720", fps).natten


def test_natten_never_falls_back_to_the_embedded_model(tmp_path):
    assert resolve_preset("video2world", None, tmp_path).embedded  # no checkpoint, no --natten
    assert resolve_preset("video2world", None, tmp_path, natten=True).name == (
        "Cosmos-Predict2-2B-Video2World-720p-16fps-natten"
    )
    with pytest.raises(PresetError, match=r"720p only .* not at 480p"):
        resolve_preset("video2world", "2B", tmp_path, "480", natten=True)
    with pytest.raises(PresetError, match="embedded model has no sparse-attention variant"):
        resolve_preset("video2world", "embedded", tmp_path, natten=True)


MISSING = "checkpoints/nvidia/Cosmos-Predict2-{size}-Video2World/model-720p-{fps}fps-natten.pt"
DOWNLOAD = (
    "python -m scripts.download_checkpoints --model_types video2world --model_sizes {size} "
    "--resolution 720 --fps {fps} --natten"
)


@pytest.mark.parametrize(
    "main, argv, size, fps",
    [
        (video2world_main, ["--natten"], "2B", 16),
        (video2world_main, ["--natten", "--model_size", "14B", "--fps", "10"], "14B", 10),
        (text2world_main, ["--natten", "--prompt", "a red ball falls"], "2B", 16),
        (bestofn_main, ["--natten", "--model_size", "14B"], "14B", 16),
    ],
)
def test_commands_with_natten_name_the_missing_sparse_checkpoint(workdir, caplog, main, argv, size, fps):
    assert main([*argv, "--disable_guardrail", "--save_path", "out.mp4"]) == 1
    assert MISSING.format(size=size, fps=fps) in caplog.text
    assert DOWNLOAD.format(size=size, fps=fps) in caplog.text
    assert not (workdir / "out.mp4").exists()


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--natten", "--resolution", "480"], "720p only"),
        (["--natten", "--model_size", "embedded"], "embedded model has no sparse-attention variant"),
    ],
)
def test_commands_refuse_what_the_reference_cannot_run(workdir, caplog, argv, message):
    assert video2world_main([*argv, "--disable_guardrail", "--save_path", "out.mp4"]) == 1
    assert message in caplog.text


def conditioning_image(folder: Path) -> None:
    media.write_image(str(folder / "in.jpg"), np.zeros((96, 160, 3), np.uint8))


def test_manifest_column_and_flow_parameter_choose_the_sparse_model(tmp_path):
    conditioning_image(tmp_path)
    manifest = tmp_path / "m.csv"
    image = tmp_path / "in.jpg"
    manifest.write_text(
        "id,prompt,input,natten,resolution\n"
        f"a,one,{image},,720\n"  # the run's choice
        f"b,two,{image},true,720\n"
        f"c,three,{image},false,720\n"
        f"d,four,{image},true,480\n"  # no sparse DiT at 480p: this row alone is rejected
    )
    loaded = read_manifest(str(manifest), "video2world", str(tmp_path / "out"))
    assert [r.id for r in loaded.rows] == ["a", "b", "c"]
    (error,) = loaded.errors
    assert (error.row, error.field) == (4, "natten") and "720p only" in error.message
    specs = {
        run_natten: {
            row.id: shard.model.natten
            for shard in plan_shards(loaded, 10, str(tmp_path / "rec"), ModelSpec(natten=run_natten))
            for row in shard.rows
        }
        for run_natten in (False, True)
    }
    assert specs == {False: {"a": False, "b": True, "c": False}, True: {"a": True, "b": True, "c": False}}
    assert VideoBatchParameters(natten=True).options().model.natten
    assert BestOfNParameters(natten=True, fps=10).options().model == ModelSpec(natten=True, fps=10)
    with pytest.raises(ValueError, match="720p only"):
        VideoBatchParameters(natten=True, resolution="480")


def test_worker_with_a_sparse_model_and_no_checkpoint_exits_as_a_configuration_error(tmp_path, caplog):
    conditioning_image(tmp_path)
    manifest = tmp_path / "m.jsonl"
    manifest.write_text(f'{{"prompt": "a red ball", "input": "{tmp_path / "in.jpg"}"}}\n')
    loaded = read_manifest(str(manifest), "video2world", str(tmp_path / "out"))
    spec = ModelSpec(natten=True, checkpoint_dir=str(tmp_path / "checkpoints"))
    (shard,) = plan_shards(loaded, 10, str(tmp_path / "rec"), spec)
    write_shard(shard, str(tmp_path / "shard.json"))
    assert worker_main([str(tmp_path / "shard.json")]) == 3  # tasks/shards.py: ShardConfigError, not retried
    assert "model-720p-16fps-natten.pt" in caplog.text and "--natten" in caplog.text


# ----------------------------------------------------------------------------------------------------
# The other reference flags: each works or is a clear error (none is accepted and ignored)
# ----------------------------------------------------------------------------------------------------


def test_text_encoder_flags_reach_the_loaded_t5():
    from cosmos_core.models import load_bundle
    from cosmos_core.text_encoder import TextEncoderOptions
    from manifests.presets import model_preset

    preset = model_preset("embedded-Video2World")
    # bf16 networks (as on a GPU): T5 keeps its checkpoint's float32 unless downcast
    kept = load_bundle(preset, device="cpu", dtype=torch.bfloat16)
    assert kept.text_encoder.dtype == torch.float32 and kept.identity["text_encoder_dtype"] == "float32"
    options = TextEncoderOptions(offload=True, downcast=True)
    down = load_bundle(preset, device="cpu", dtype=torch.bfloat16, text_encoder_options=options)
    assert down.text_encoder.dtype == torch.bfloat16 and down.identity["text_encoder_dtype"] == "bfloat16"
    assert down.identity["text_encoder_offloaded"] is False  # on a CPU there is nothing to offload


def test_text_encoder_flags_on_the_commands(workdir):
    argv = ["--offload_text_encoder", "--downcast_text_encoder", "--disable_guardrail", "--steps", "2"]
    assert video2world_main([*argv, "--save_path", "v.mp4"]) == 0
    sidecar = json.loads((workdir / "v.mp4.json").read_text())
    model = json.dumps(sidecar)
    assert '"text_encoder_dtype": "float32"' in model  # CPU: the pipeline's dtype is float32 anyway
    assert '"text_encoder_offloaded": false' in model


@pytest.mark.parametrize(
    "main, argv, message",
    [
        (text2image_main, ["--use_fast_tokenizer"], "--use_fast_tokenizer: the 0.6B fast-tokenizer"),
        (bestofn_main, ["--prompt_prefix", "A robot. "], "--prompt_prefix applies to GR00T Dreams"),
        (bestofn_main, ["--gr00t_variant", "gr1"], "--gr00t_variant: GR00T Dreams checkpoints"),
    ],
)
def test_unsupported_reference_flags_are_errors(workdir, caplog, main, argv, message):
    out = "out.jpg" if main is text2image_main else "out"
    assert main([*argv, "--disable_guardrail", "--save_path", out]) == 1
    assert message in caplog.text
