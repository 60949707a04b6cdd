"""Content digests of the files a stage key depends on (weights, annotation files) and cheap signatures of image
folders, so that a file overwritten at the same path can never be taken for the old one.

:func:`file_digest` is the sha256 of a file's bytes, memoised on ``(absolute path, size, mtime_ns, inode)`` in this
process and in a small JSON memo shared by processes (``$CROWDBENCH_DIGEST_CACHE/digests.json``, default
``~/.cache/crowdbench/``; written atomically under a lock, a corrupt or unreadable memo is ignored), so a large
weights file is read once, not on every run. A file modified less than :data:`RACY_SECONDS` ago is never memoised
(a same-size rewrite within the file system's timestamp granularity would otherwise keep its old digest).
:func:`folder_signature` hashes a folder's sorted file list with sizes and mtimes (no content reads).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path, PurePath
from typing import Any

from pydantic import BaseModel

from crowdbench.datasets.formats.atomic import atomic_write_text

RACY_SECONDS = 2.0
"""Files modified more recently than this are hashed every time (never memoised)."""
FOLDER_MEMO_SECONDS = 30.0
"""How long one process reuses a folder signature (a stat walk of a large image folder takes a moment)."""
MAX_ENTRIES = 20_000
"""The persistent memo keeps at most this many entries (the newest)."""
_CHUNK = 1 << 20

_memo: dict[str, str] = {}
_folders: dict[str, tuple[float, str]] = {}
_disk: dict[str, str] | None = None
_lock = threading.Lock()


def memo_path() -> Path:
    """The persistent memo file: ``$CROWDBENCH_DIGEST_CACHE/digests.json`` or ``~/.cache/crowdbench/digests.json``."""
    base = os.environ.get("CROWDBENCH_DIGEST_CACHE")
    return (Path(base) if base else Path.home() / ".cache" / "crowdbench") / "digests.json"


def _read_memo(path: Path) -> dict[str, str]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):  # absent, unreadable or corrupt: start afresh
        return {}
    if not isinstance(data, dict):
        return {}
    return {k: v for k, v in data.items() if isinstance(k, str) and isinstance(v, str)}


@contextlib.contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    with open(path.with_name(path.name + ".lock"), "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _store(key: str, digest: str) -> None:
    """Add one entry to the persistent memo (merged with what other processes wrote); failures are ignored."""
    global _disk
    path = memo_path()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with _file_lock(path):
            entries = _read_memo(path)
            entries.pop(key, None)
            entries[key] = digest  # newest last: trimming drops the oldest
            if len(entries) > MAX_ENTRIES:
                entries = dict(list(entries.items())[-MAX_ENTRIES:])
            atomic_write_text(path, json.dumps(entries, separators=(",", ":")))
        _disk = entries
    except OSError:  # read-only home, full disk: the memo is only an optimisation
        pass


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(_CHUNK):
            h.update(chunk)
    return h.hexdigest()


def file_digest(path: str | os.PathLike[str]) -> str:
    """sha256 (hex) of the file's content; memoised on (absolute path, size, mtime_ns, inode)."""
    global _disk
    p = Path(path).absolute()
    st = p.stat()  # FileNotFoundError names the path
    if not p.is_file():
        raise IsADirectoryError(f"{p}: not a file")
    key = f"{p}|{st.st_size}|{st.st_mtime_ns}|{st.st_ino}"
    with _lock:
        if key in _memo:
            return _memo[key]
    if _disk is None or key not in _disk:
        _disk = _read_memo(memo_path())  # other processes may have hashed it meanwhile
    if key in _disk:
        digest = _disk[key]
    else:
        digest = _sha256(p)
        if time.time() - st.st_mtime_ns / 1e9 < RACY_SECONDS:
            return digest
        _store(key, digest)
    with _lock:
        _memo[key] = digest
    return digest


def folder_signature(path: str | os.PathLike[str]) -> str:
    """sha256 of the folder's sorted file list (relative path, size, mtime_ns), recursively; reads no content.
    A missing folder has the signature of its absence."""
    p = Path(path).absolute()
    now = time.monotonic()
    with _lock:
        hit = _folders.get(str(p))
        if hit is not None and now - hit[0] < FOLDER_MEMO_SECONDS:
            return hit[1]
    rows: list[str] = []
    if not p.is_dir():
        rows.append("missing")
    for dirpath, dirnames, filenames in os.walk(p):
        dirnames.sort()
        rel = os.path.relpath(dirpath, p)
        for name in sorted(filenames):
            try:
                st = os.stat(os.path.join(dirpath, name))
            except OSError:  # vanished or a broken link
                continue
            rows.append(f"{os.path.join(rel, name)}\t{st.st_size}\t{st.st_mtime_ns}")
    signature = hashlib.sha256("\n".join(rows).encode()).hexdigest()
    with _lock:
        _folders[str(p)] = (now, signature)
    return signature


def setting_digest(path: str | os.PathLike[str], setting: str) -> str:
    """``"sha256:<hex>"`` of the file a Path-valued config setting names; a missing file is a one-line
    :class:`FileNotFoundError` naming the setting and the path."""
    try:
        return f"sha256:{file_digest(path)}"
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
        raise FileNotFoundError(f"{setting}={path}: no such file") from None


def keyed_dump(model: BaseModel, where: str) -> dict[str, Any]:
    """``model.model_dump(mode="json")`` for a stage key: every Path-valued setting (nested models and lists of
    them included) is replaced by the content digest of its file (:func:`setting_digest`), so overwriting the file
    changes the key and moving it does not. ``where`` is the dotted name of ``model`` (for errors)."""
    out = model.model_dump(mode="json")
    for name in type(model).model_fields:
        out[name] = _keyed(getattr(model, name), out[name], f"{where}.{name}")
    return out


def _keyed(value: Any, dumped: Any, where: str) -> Any:
    if isinstance(value, PurePath):
        return setting_digest(value, where)
    if isinstance(value, BaseModel):
        return keyed_dump(value, where)
    if isinstance(value, list | tuple) and isinstance(dumped, list):
        return [_keyed(v, d, f"{where}[{i}]") for i, (v, d) in enumerate(zip(value, dumped, strict=True))]
    if isinstance(value, dict) and isinstance(dumped, dict):
        return {k: _keyed(value.get(k), d, f"{where}.{k}") for k, d in dumped.items()}
    return dumped


def clear_memo() -> None:
    """Forget this process's memos (the persistent memo stays)."""
    global _disk
    with _lock:
        _memo.clear()
        _folders.clear()
        _disk = None
