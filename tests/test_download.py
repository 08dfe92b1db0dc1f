"""Checkpoint download planning (scripts/download_checkpoints.py, cosmos_core/download.py), offline.

The expected repositories, revisions and patterns are written out from the reference's
scripts/download_checkpoints.py, not computed from cosmos_core.download's tables.
"""

from __future__ import annotations

import subprocess
import sys
import warnings
from pathlib import Path

import huggingface_hub
import pytest

from cosmos_core.download import (
    DownloadError,
    DownloadItem,
    DownloadWarning,
    download,
    format_plan,
    plan_downloads,
)
from manifests import presets
from scripts.download_checkpoints import main

ROOT = Path(__file__).resolve().parents[1]
CKPT = Path("ckpt")
SHARED = ["google-t5/t5-11b", "nvidia/Cosmos-Guardrail1", "meta-llama/Llama-Guard-3-8B"]


def plan(types, sizes=("2B", "14B"), res=("720",), fps=("16",), natten=False) -> dict[str, DownloadItem]:
    """The plan as {repo_id: item}, failing on any DownloadWarning (tests that expect one catch it)."""
    with warnings.catch_warnings():
        warnings.simplefilter("error", DownloadWarning)
        items = plan_downloads(list(types), list(sizes), list(res), list(fps), CKPT, natten=natten)
    by_repo = {item.repo_id: item for item in items}
    assert len(by_repo) == len(items), "a repository appears twice"
    return by_repo


@pytest.fixture
def no_network(monkeypatch):
    """Any snapshot_download call fails the test."""

    def refuse(*args, **kwargs):
        raise AssertionError(f"snapshot_download called: {args} {kwargs}")

    monkeypatch.setattr(huggingface_hub, "snapshot_download", refuse)


# ----------------------------------------------------------------------------------------------------
# Selection
# ----------------------------------------------------------------------------------------------------


def test_documented_text2image_2b():
    items = plan(["text2image"], ["2B"])
    assert list(items) == ["nvidia/Cosmos-Predict2-2B-Text2Image", *SHARED]
    t2i = items["nvidia/Cosmos-Predict2-2B-Text2Image"]
    assert t2i.revision == "acdb5fde992a73ef0355f287977d002cbfd127e0"
    assert t2i.allow_patterns is None and t2i.ignore_patterns is None  # whole repository
    assert t2i.local_dir == CKPT / "nvidia" / "Cosmos-Predict2-2B-Text2Image"
    assert "Text2Image 2B" in t2i.reason


def test_shared_models_pinned_and_filtered():
    items = plan(["text2image"], ["0.6B"])
    t5, guardrail, llama = (items[r] for r in SHARED)
    assert t5.revision == "90f37703b3334dfe9d2b009bfcbfbf1ac9d28ea3"
    assert t5.allow_patterns is None and t5.ignore_patterns == ("tf_model.h5",)
    assert guardrail.revision == "d6d4bfa899a71454a700907664f3e88f503950cf"
    assert guardrail.allow_patterns is None and guardrail.ignore_patterns is None
    assert llama.revision == "7327bd9f6efbbe6101dc6cc4736302b3cbb6e425"
    assert llama.ignore_patterns == ("original/*",)
    assert llama.local_dir == CKPT / "meta-llama" / "Llama-Guard-3-8B"
    assert (
        items["nvidia/Cosmos-Predict2-0.6B-Text2Image"].revision == "80e9f1599778499e9b5435179861871b5a3561d4"
    )
    assert "nvidia/Cosmos-Reason1-7B" not in items  # the refiner serves Video2World only


def test_video2world_2b_480p_10fps():
    items = plan(["video2world"], ["2B"], ["480"], [10])
    assert list(items) == ["nvidia/Cosmos-Predict2-2B-Video2World", "nvidia/Cosmos-Reason1-7B", *SHARED]
    v2w = items["nvidia/Cosmos-Predict2-2B-Video2World"]
    assert v2w.revision == "f50c09f5d8ab133a90cac3f4886a6471e9ba3f18"
    assert v2w.allow_patterns == ("model-480p-10fps.pt", "tokenizer/*")
    assert "Video2World 2B 480p 10fps DiT" in v2w.reason
    reason1 = items["nvidia/Cosmos-Reason1-7B"]
    assert reason1.revision == "8fe96c1fa10db9e666b6fa6a87fea57dd9635649" and reason1.allow_patterns is None


def test_defaults_everything_the_reference_fetches():
    with pytest.warns(DownloadWarning, match="Sample-Action-Conditioned"):
        items = plan_downloads(["text2image", "video2world", "sample_action_conditioned", "sample_gr00t_dreams_gr1",
                                "sample_gr00t_dreams_droid", "multiview"], ["2B", "14B"], ["720"], ["16"], CKPT)  # fmt: skip
    expected = {
        "nvidia/Cosmos-Predict2-2B-Text2Image": ("acdb5fde992a73ef0355f287977d002cbfd127e0", None),
        "nvidia/Cosmos-Predict2-14B-Text2Image": ("015332720f70dd7b497c1cff9fd0c936a77f160b", None),
        "nvidia/Cosmos-Predict2-2B-Video2World": (
            "f50c09f5d8ab133a90cac3f4886a6471e9ba3f18",
            ("model-720p-16fps.pt", "tokenizer/*"),
        ),
        "nvidia/Cosmos-Predict2-14B-Video2World": (
            "03b03a377fede782647afac998f674d9f358e319",
            ("model-720p-16fps.pt", "tokenizer/*"),
        ),
        "nvidia/Cosmos-Reason1-7B": ("8fe96c1fa10db9e666b6fa6a87fea57dd9635649", None),
        "nvidia/Cosmos-Predict2-2B-Multiview": ("52f3731663eecdc998d9608f9b21ac4dcbdea6f1", ("*.pt",)),
        "nvidia/Cosmos-Predict2-14B-Sample-GR00T-Dreams-GR1": (
            "926f34dd83860c5406ab4b400e156c3fd6fe6c0d",
            None,
        ),
        "nvidia/Cosmos-Predict2-14B-Sample-GR00T-Dreams-DROID": (
            "ebc29d30a3fab504bcc779a85bca073d14ad39f9",
            None,
        ),
        "google-t5/t5-11b": ("90f37703b3334dfe9d2b009bfcbfbf1ac9d28ea3", None),
        "nvidia/Cosmos-Guardrail1": ("d6d4bfa899a71454a700907664f3e88f503950cf", None),
        "meta-llama/Llama-Guard-3-8B": ("7327bd9f6efbbe6101dc6cc4736302b3cbb6e425", None),
    }
    assert {i.repo_id: (i.revision, i.allow_patterns) for i in items} == expected
    assert [i.repo_id for i in items][-3:] == SHARED
    assert all(i.local_dir == CKPT / i.repo_id for i in items)


def test_natten_adds_720p_sparse_files():
    items = plan(["video2world"], ["14B"], ["720"], ["10", "16"], natten=True)
    assert items["nvidia/Cosmos-Predict2-14B-Video2World"].allow_patterns == (
        "model-720p-10fps.pt",
        "model-720p-10fps-natten.pt",
        "model-720p-16fps.pt",
        "model-720p-16fps-natten.pt",
        "tokenizer/*",
    )


def test_natten_at_480p_warns_and_keeps_dense_file():
    with pytest.warns(DownloadWarning, match="NATTEN.*720p"):
        items = plan_downloads(["video2world"], ["2B"], ["480", "720"], ["16"], CKPT, natten=True)
    v2w = next(i for i in items if i.repo_id == "nvidia/Cosmos-Predict2-2B-Video2World")
    assert v2w.allow_patterns == (
        "model-480p-16fps.pt",
        "model-720p-16fps.pt",
        "model-720p-16fps-natten.pt",
        "tokenizer/*",
    )


def test_natten_without_video2world_warns():
    with pytest.warns(DownloadWarning, match="--natten ignored"):
        items = plan_downloads(["text2image"], ["2B"], ["720"], ["16"], CKPT, natten=True)
    assert not any("natten" in p for i in items for p in i.allow_patterns or ())


def test_0p6b_video2world_is_skipped_with_warning():
    with pytest.warns(DownloadWarning, match="0.6B Video2World"):
        items = plan_downloads(["text2image", "video2world"], ["0.6B", "2B"], ["720"], ["16"], CKPT)
    repos = [i.repo_id for i in items]
    assert "nvidia/Cosmos-Predict2-0.6B-Text2Image" in repos
    assert "nvidia/Cosmos-Predict2-0.6B-Video2World" not in repos
    assert "nvidia/Cosmos-Predict2-2B-Video2World" in repos


def test_only_invalid_combinations_is_an_error():
    with pytest.warns(DownloadWarning), pytest.raises(ValueError, match="nothing to download"):
        plan_downloads(["video2world"], ["0.6B"], ["720"], ["16"], CKPT)
    # Reason1 is not fetched for a Video2World request that selects no Video2World model.
    with pytest.warns(DownloadWarning), pytest.raises(ValueError, match="nothing to download"):
        plan_downloads(["sample_action_conditioned"], ["2B"], ["480"], ["16"], CKPT)


def test_single_size_types_follow_model_sizes():
    with pytest.warns(DownloadWarning) as record:
        items = plan_downloads(
            ["text2image", "multiview", "sample_gr00t_dreams_gr1"], ["14B"], ["720"], ["16"], CKPT
        )
    messages = " ".join(str(w.message) for w in record)
    assert "Multiview" in messages and "GR00T" not in messages
    repos = [i.repo_id for i in items]
    assert "nvidia/Cosmos-Predict2-2B-Multiview" not in repos
    assert "nvidia/Cosmos-Predict2-14B-Sample-GR00T-Dreams-GR1" in repos
    with pytest.warns(DownloadWarning, match="GR00T Dreams DROID.*14B"):
        plan_downloads(["multiview", "sample_gr00t_dreams_droid"], ["2B"], ["720"], ["16"], CKPT)


def test_unknown_values_are_errors():
    with pytest.raises(ValueError, match=r"model_sizes.*0\.6B, 2B, 14B"):
        plan_downloads(["text2image"], ["7B"], ["720"], ["16"], CKPT)
    with pytest.raises(ValueError, match="fps"):
        plan_downloads(["video2world"], ["2B"], ["720"], [24], CKPT)
    with pytest.raises(ValueError, match="model_types"):
        plan_downloads(["text2world"], ["2B"], ["720"], ["16"], CKPT)


def test_merging_unions_patterns_and_fetches_each_repo_once():
    items = plan(["text2image", "video2world"], ["2B", "2B"], ["480", "720", "480"], [10, "16", "10"])
    assert list(items) == [
        "nvidia/Cosmos-Predict2-2B-Text2Image",
        "nvidia/Cosmos-Predict2-2B-Video2World",
        "nvidia/Cosmos-Reason1-7B",
        *SHARED,
    ]
    v2w = items["nvidia/Cosmos-Predict2-2B-Video2World"]
    assert sorted(v2w.allow_patterns) == sorted(
        [
            "model-480p-10fps.pt",
            "model-480p-16fps.pt",
            "model-720p-10fps.pt",
            "model-720p-16fps.pt",
            "tokenizer/*",
        ]
    )
    assert v2w.reason.count("Video2World 2B 480p 10fps DiT") == 1
    assert "Video2World 2B VAE" in v2w.reason


PREDICT2_PRESETS = [
    n for n, p in presets.MODEL_PRESETS.items() if p.repo_id.startswith("nvidia/Cosmos-Predict2-")
]


def test_predict2_presets_found():
    # 3 Text2Image + 2 sizes x 2 resolutions x 2 fps Video2World + 2 sizes x 2 fps 720p NATTEN
    assert len(PREDICT2_PRESETS) == 15


@pytest.mark.parametrize("name", PREDICT2_PRESETS)
def test_layout_matches_presets(name):
    """Every real Predict2 preset's DiT file (and VAE) is selected, at checkpoint_dir/repo_id/dit_file."""
    preset = presets.model_preset(name)
    size = preset.repo_id.split("-")[2]  # nvidia/Cosmos-Predict2-<size>-<Task>
    if preset.task == "text2image":
        items = plan(["text2image"], [size])
        vae_pattern = None
    else:
        items = plan(["video2world"], [size], [preset.resolution], [preset.fps], natten=preset.natten)
        vae_pattern = "tokenizer/*"
    item = items[preset.repo_id]
    assert item.local_dir == CKPT / preset.repo_id  # the loader reads checkpoint_dir / repo_id / dit_file
    if item.allow_patterns is not None:
        assert preset.dit_file in item.allow_patterns and vae_pattern in item.allow_patterns


def test_layout_of_the_documented_files():
    items = plan(["video2world"], ["2B"])
    v2w = items["nvidia/Cosmos-Predict2-2B-Video2World"]
    preset = presets.video2world_preset("2B", "720", 16)
    assert v2w.local_dir / preset.dit_file == Path(
        "ckpt/nvidia/Cosmos-Predict2-2B-Video2World/model-720p-16fps.pt"
    )
    assert items["google-t5/t5-11b"].local_dir == CKPT / presets.T5_REPO


def test_format_plan_lists_repo_revision_patterns_destination_reason():
    items = [
        DownloadItem("meta-llama/Llama-Guard-3-8B", "abc123", None, ("original/*",), Path("c/m"), "guard"),
        DownloadItem("org/Model", None, ("a.pt", "tokenizer/*"), None, Path("c/org/Model"), "Model DiT"),
    ]
    text = format_plan(items)
    assert text.splitlines()[0] == "2 repositories:"
    assert "meta-llama/Llama-Guard-3-8B  (gated" in text
    assert "revision: abc123" in text and "revision: main (not pinned)" in text
    assert "files:    all except original/*" in text and "files:    a.pt tokenizer/*" in text
    assert f"into:     {Path('c/org/Model')}" in text and "for:      Model DiT" in text


# ----------------------------------------------------------------------------------------------------
# Fetching (snapshot_download replaced; the planner is the real one)
# ----------------------------------------------------------------------------------------------------


def test_download_calls_snapshot_download_per_item(monkeypatch, tmp_path):
    calls = []
    monkeypatch.setattr(
        huggingface_hub, "snapshot_download", lambda repo_id, **kw: calls.append((repo_id, kw))
    )
    items = plan_downloads(["video2world"], ["2B"], ["480"], ["10"], tmp_path)
    download(items, token="hf_test")
    assert [c[0] for c in calls] == [i.repo_id for i in items]
    kwargs = calls[0][1]
    assert kwargs == {
        "revision": "f50c09f5d8ab133a90cac3f4886a6471e9ba3f18",
        "allow_patterns": ["model-480p-10fps.pt", "tokenizer/*"],
        "ignore_patterns": None,
        "local_dir": tmp_path / "nvidia" / "Cosmos-Predict2-2B-Video2World",
        "token": "hf_test",
    }


def test_download_error_names_repo_and_login(monkeypatch, tmp_path):
    def fail(repo_id, **kwargs):
        if repo_id == "meta-llama/Llama-Guard-3-8B":
            raise OSError("401 Client Error")

    monkeypatch.setattr(huggingface_hub, "snapshot_download", fail)
    items = plan_downloads(["text2image"], ["2B"], ["720"], ["16"], tmp_path)
    with pytest.raises(DownloadError, match=r"meta-llama/Llama-Guard-3-8B.*huggingface-cli login") as info:
        download(items)
    assert isinstance(info.value.__cause__, OSError)


def test_download_error_for_ungated_repo_suggests_retry(monkeypatch, tmp_path):
    def fail(repo_id, **kwargs):
        raise ConnectionError("connection reset")

    monkeypatch.setattr(huggingface_hub, "snapshot_download", fail)
    items = plan_downloads(["text2image"], ["2B"], ["720"], ["16"], tmp_path)
    with pytest.raises(DownloadError, match=r"nvidia/Cosmos-Predict2-2B-Text2Image.*connection reset.*retry"):
        download(items)


# ----------------------------------------------------------------------------------------------------
# Command line
# ----------------------------------------------------------------------------------------------------


def test_dry_run_prints_plan_and_touches_nothing(capsys, tmp_path, no_network):
    checkpoint_dir = tmp_path / "checkpoints"
    argv = ["--model_types", "text2image", "--model_sizes", "2B", "--checkpoint_dir", str(checkpoint_dir)]
    assert main([*argv, "--dry-run"]) == 0
    out = capsys.readouterr().out
    for repo in ["nvidia/Cosmos-Predict2-2B-Text2Image", *SHARED]:
        assert repo in out
        assert str(checkpoint_dir / repo) in out
    assert "acdb5fde992a73ef0355f287977d002cbfd127e0" in out
    assert "tf_model.h5" in out and "original/*" in out
    assert "Video2World" not in out
    assert not checkpoint_dir.exists()


def test_dry_run_of_defaults(capsys, no_network):
    assert main(["--dry-run"]) == 0
    captured = capsys.readouterr()
    assert "11 repositories" in captured.out
    assert "model-720p-16fps.pt" in captured.out
    assert "warning:" in captured.err and "Sample-Action-Conditioned" in captured.err


def test_cli_passes_token_and_reports_failure(capsys, monkeypatch, tmp_path):
    calls = []
    monkeypatch.setattr(huggingface_hub, "snapshot_download", lambda repo_id, **kw: calls.append(kw["token"]))
    argv = ["--model_types", "text2image", "--model_sizes", "0.6B", "--checkpoint_dir", str(tmp_path)]
    assert main([*argv, "--hf_token", "hf_x"]) == 0
    assert calls == ["hf_x"] * 4

    def fail(repo_id, **kwargs):
        raise OSError("boom")

    monkeypatch.setattr(huggingface_hub, "snapshot_download", fail)
    assert main(argv) == 1
    assert "error: downloading nvidia/Cosmos-Predict2-0.6B-Text2Image" in capsys.readouterr().err


def test_cli_invalid_request(capsys, no_network):
    assert main(["--model_types", "video2world", "--model_sizes", "0.6B", "--dry-run"]) == 2
    err = capsys.readouterr().err
    assert (
        "warning: skipping 0.6B Video2World" in err
        and "error: nothing to download" in err
        and "warnings say why" in err
    )
    with pytest.raises(SystemExit) as info:
        main(["--model_sizes", "3B"])
    assert info.value.code == 2


def test_help_lists_every_flag_and_default(capsys):
    with pytest.raises(SystemExit) as info:
        main(["--help"])
    assert info.value.code == 0
    out = capsys.readouterr().out
    for flag in ["--model_types", "--model_sizes", "--fps", "--resolution", "--checkpoint_dir", "--natten",
                 "--dry-run", "--hf_token"]:  # fmt: skip
        assert flag in out
    for default in ["(default: 2B 14B)", "(default: 16)", "(default: 720)", "(default: checkpoints)"]:
        assert default in " ".join(out.split())
    assert "sample_gr00t_dreams_droid multiview)" in " ".join(out.split())


def test_dry_run_does_not_import_huggingface_hub():
    """The planner and --dry-run work without huggingface_hub; only download() imports it."""
    code = (
        "import sys; from scripts.download_checkpoints import main; "
        "rc = main(['--model_types', 'text2image', '--model_sizes', '2B', '--dry-run']); "
        "assert 'huggingface_hub' not in sys.modules, 'huggingface_hub imported'; sys.exit(rc)"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert "nvidia/Cosmos-Predict2-2B-Text2Image" in result.stdout
