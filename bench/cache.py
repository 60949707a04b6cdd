"""Content-addressed stage outputs (DESIGN.md "Stages, cache, store").

A stage's key is the hash of its name, the config slice it reads, the keys of its inputs and the source of the
modules it runs. Its outputs live in ``<cache>/<stage>/<key>/``; they are written into a temporary sibling
folder and renamed into place, so an interrupted stage leaves nothing that looks finished. A per-key file lock
lets two processes that need the same stage wait for one another instead of computing it twice.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import importlib
import inspect
import json
import os
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from functools import cache
from pathlib import Path
from typing import Any

from crowdbench.datasets.formats.atomic import atomic_write_text

DONE = "stage.json"


def canonical_json(obj: Any) -> str:
    """Deterministic JSON (sorted keys, no whitespace) used for hashing configs."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str)


@cache
def code_version(module_names: tuple[str, ...]) -> str:
    """Hash of the source files of ``module_names`` (a change in the code invalidates the stage)."""
    digest = hashlib.sha256()
    for name in sorted(module_names):
        module = importlib.import_module(name)
        digest.update(name.encode())
        digest.update(inspect.getsource(module).encode())
    return digest.hexdigest()[:16]


def stage_key(stage: str, config_slice: Any, inputs: Sequence[str], modules: Sequence[str]) -> str:
    payload = canonical_json(
        {"stage": stage, "config": config_slice, "inputs": list(inputs), "code": code_version(tuple(modules))}
    )
    return hashlib.sha256(payload.encode()).hexdigest()[:20]


class StageCache:
    """Folder of finished stage outputs, ``<root>/<stage>/<key>/``.

    With ``remote`` (an fsspec URL: ``s3://bucket/crowdbench``, ``gs://``, ``file:///shared/cache``, ...), the folder is
    a local working copy of a shared cache: a finished stage is uploaded there (its files first, ``stage.json`` last,
    so a stage is finished on the remote exactly when its marker is there: an interrupted upload is never taken for a
    result), and a stage finished by another machine is downloaded instead of recomputed. A plain shared filesystem
    path needs no ``remote``: point ``--run-dir`` at it (the rename into place is atomic there)."""

    def __init__(self, root: Path, remote: str | None = None) -> None:
        self.root = Path(root)
        self.remote = remote.rstrip("/") if remote else None
        self._fs: Any = None
        self._base = ""

    def _remote_fs(self) -> Any:
        if self._fs is None:
            try:
                import fsspec
            except ImportError:
                raise RuntimeError("a remote cache needs fsspec: pip install fsspec (and its s3fs / gcsfs)") from None
            self._fs, self._base = fsspec.core.url_to_fs(self.remote)
        return self._fs

    def _remote_path(self, stage: str, key: str) -> str:
        self._remote_fs()
        return f"{self._base}/{stage}/{key}"

    def _download(self, stage: str, key: str) -> bool:
        """Fetch a stage finished on the remote into the local folder (atomically); False when it is not there."""
        fs, remote = self._remote_fs(), self._remote_path(stage, key)
        if not fs.exists(f"{remote}/{DONE}"):
            return False
        final = self.path(stage, key)
        final.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{key}.", dir=final.parent))
        try:
            for name in fs.find(remote):
                rel = name[len(remote) :].lstrip("/")
                (tmp / rel).parent.mkdir(parents=True, exist_ok=True)
                fs.get_file(name, str(tmp / rel))
            if final.exists():
                shutil.rmtree(final)
            os.rename(tmp, final)
        finally:
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)
        return True

    def _upload(self, stage: str, key: str) -> None:
        fs, remote, local = self._remote_fs(), self._remote_path(stage, key), self.path(stage, key)
        files = sorted(p for p in local.rglob("*") if p.is_file())
        for path in [p for p in files if p.name != DONE] + [local / DONE]:  # the marker last: the commit point
            target = f"{remote}/{path.relative_to(local).as_posix()}"
            fs.makedirs(target.rsplit("/", 1)[0], exist_ok=True)
            fs.put_file(str(path), target)

    def path(self, stage: str, key: str) -> Path:
        return self.root / stage / key

    def is_done(self, stage: str, key: str) -> bool:
        if (self.path(stage, key) / DONE).is_file():
            return True
        return self.remote is not None and self._download(stage, key)

    def meta(self, stage: str, key: str) -> dict[str, Any]:
        return json.loads((self.path(stage, key) / DONE).read_text())

    @contextlib.contextmanager
    def lock(self, stage: str, key: str) -> Iterator[None]:
        """Exclusive lock on one stage key (released when the holder exits, even on kill -9)."""
        lock_dir = self.root / ".locks"
        lock_dir.mkdir(parents=True, exist_ok=True)
        with open(lock_dir / f"{stage}-{key}.lock", "w") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    @contextlib.contextmanager
    def writing(self, stage: str, key: str, meta: dict[str, Any]) -> Iterator[Path]:
        """Yield a temporary folder to fill; on success it is renamed to the final path with its metadata."""
        final = self.path(stage, key)
        final.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{key}.", dir=final.parent))
        try:
            yield tmp
            atomic_write_text(tmp / DONE, json.dumps(meta, indent=1, default=str))
            if final.exists():  # a stale partial folder without DONE: replace it
                shutil.rmtree(final)
            os.rename(tmp, final)
        finally:
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)
        if self.remote is not None:
            self._upload(stage, key)

    def scratch(self, stage: str, key: str) -> Path:
        """A folder that survives interruption (training checkpoints for resuming a stage midway)."""
        path = self.root / stage / f".{key}.resume"
        path.mkdir(parents=True, exist_ok=True)
        return path
