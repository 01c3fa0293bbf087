"""Safety rules: safetensors only, no remote code, allowed model folders, upload limits, XSRF."""

from __future__ import annotations

import re
import tomllib

import pytest

from engine.toolkit.checkpoints import ModelRef, load_classifier, resolve
from engine.toolkit.config import LabError
from tests.conftest import ROOT

SOURCES = [p for d in ("engine", "storage", "pages") for p in (ROOT / d).rglob("*.py")] + \
    [ROOT / "app.py"]


def test_no_remote_code_and_no_pickle_loading() -> None:
    for path in SOURCES:
        text = path.read_text()
        assert not re.search(r"trust_remote_code\s*=\s*True", text), path
        for call in re.findall(r"torch\.load\([^)]*\)", text):
            assert "weights_only=True" in call, (path, call)


def test_pickle_weights_are_refused(tiny_model_dir, tmp_path) -> None:
    """A folder with only a pickled pytorch_model.bin does not load."""
    import shutil

    import torch
    from safetensors.torch import load_file

    folder = tmp_path / "pickled"
    shutil.copytree(tiny_model_dir, folder)
    state = load_file(folder / "model.safetensors")
    (folder / "model.safetensors").unlink()
    torch.save(state, folder / "pytorch_model.bin")
    with pytest.raises(LabError, match="safetensors"):
        load_classifier(ModelRef("pickled", str(folder), "local"))


def test_local_models_only_inside_allowed_folders(tiny_model_dir, monkeypatch, tmp_path) -> None:
    assert resolve(str(tiny_model_dir)).source == "local"
    monkeypatch.setenv("LAB_MODEL_DIRS", str(tmp_path / "elsewhere"))
    with pytest.raises(LabError, match="LAB_MODEL_DIRS"):
        resolve(str(tiny_model_dir))


def test_link_cannot_escape_the_allowed_folders(tiny_model_dir, monkeypatch, tmp_path) -> None:
    allowed = tmp_path / "allowed"
    allowed.mkdir()
    (allowed / "sneaky").symlink_to(tiny_model_dir)
    monkeypatch.setenv("LAB_MODEL_DIRS", str(allowed))
    with pytest.raises(LabError, match="LAB_MODEL_DIRS"):
        resolve(str(allowed / "sneaky"))


def test_streamlit_config_keeps_xsrf_and_limits_uploads() -> None:
    config = tomllib.loads((ROOT / ".streamlit" / "config.toml").read_text())
    assert config["server"]["enableXsrfProtection"] is True
    assert 0 < config["server"]["maxUploadSize"] <= 50
    assert config["browser"]["gatherUsageStats"] is False


def test_uploads_accept_csv_only() -> None:
    text = (ROOT / "pages" / "models.py").read_text()
    assert re.search(r"file_uploader\([^)]*type=\[\"csv\"\]", text)
