"""Content-addressed stage outputs (DESIGN.md "Stages, cache, store").

A stage's key is the hash of its name, the config slice it reads, the keys of its inputs and the source of the
modules it runs. Its outputs live in ``<cache>/<stage>/<key>/``; they are written into a temporary sibling
folder and renamed into place, so an interrupted stage leaves nothing that looks finished. A per-key file lock
lets two processes that need the same stage wait for one another instead of computing it twice.
"""

from __future__ import annotations

import ast
import contextlib
import fcntl
import hashlib
import importlib.util
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


PACKAGE = "crowdbench"


def module_source(name: str) -> str:
    """The source text of module ``name`` (its file as found by :func:`importlib.util.find_spec`; the package
    folders of pyproject's ``package-dir``), ``""`` for a module without a source file."""
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.origin or not spec.origin.endswith(".py"):
        return ""
    return Path(spec.origin).read_text(encoding="utf-8")


def _is_package(name: str) -> bool:
    spec = importlib.util.find_spec(name)
    return spec is not None and spec.submodule_search_locations is not None


def _exists(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return False


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _string_constants(tree: ast.Module) -> dict[str, tuple[str, ...]]:
    """Module-level ``NAME = ("a", "b", ...)`` (tuples or lists of string constants)."""
    found: dict[str, tuple[str, ...]] = {}
    for node in tree.body:
        targets = (
            node.targets if isinstance(node, ast.Assign) else [node.target] if isinstance(node, ast.AnnAssign) else []
        )
        value = getattr(node, "value", None)
        if isinstance(value, ast.Tuple | ast.List) and all(
            isinstance(e, ast.Constant) and isinstance(e.value, str) for e in value.elts
        ):
            for target in targets:
                if isinstance(target, ast.Name):
                    found[target.id] = tuple(e.value for e in value.elts)  # type: ignore[attr-defined]
    return found


def module_imports(name: str) -> set[str]:
    """The ``crowdbench`` modules module ``name`` imports: ``import`` / ``from ... import`` statements anywhere
    (in functions too; relative ones resolved; ``from package import submodule`` counts the submodule; blocks under
    ``if TYPE_CHECKING:`` skipped) and ``importlib.import_module`` calls whose argument is a string constant or the
    loop variable of a ``for`` over a module-level tuple of string constants (the plugin registry's
    ``PLUGIN_MODULES``)."""
    tree = ast.parse(module_source(name))
    package = name if _is_package(name) else name.rpartition(".")[0]
    constants = _string_constants(tree)
    loops: dict[str, tuple[str, ...]] = {}
    found: set[str] = set()

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                base = f"{parent}.{base}" if base else parent
            found.add(base)
            if base.startswith(PACKAGE) and _is_package(base):
                found.update(f"{base}.{alias.name}" for alias in node.names if _exists(f"{base}.{alias.name}"))
        elif isinstance(node, ast.For) and isinstance(node.target, ast.Name) and isinstance(node.iter, ast.Name):
            if node.iter.id in constants:
                loops[node.target.id] = constants[node.iter.id]
        elif isinstance(node, ast.Call) and node.args:
            func = node.func
            called = func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else ""
            arg = node.args[0]
            if called == "import_module":
                if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
                    found.add(arg.value)
                elif isinstance(arg, ast.Name) and arg.id in loops:
                    found.update(loops[arg.id])
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    return {m for m in found if m == PACKAGE or m.startswith(PACKAGE + ".")}


@cache
def import_closure(entries: tuple[str, ...]) -> tuple[str, ...]:
    """``entries`` and every ``crowdbench`` module they import, directly or not (:func:`module_imports`), with the
    packages that hold them (importing a module runs its packages' ``__init__``), sorted."""
    seen: set[str] = set()
    todo = list(entries)
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        parts = name.split(".")
        todo += [".".join(parts[:i]) for i in range(1, len(parts))]
        todo += sorted(_closure_edges(name) - seen)
    return tuple(sorted(seen))


@cache
def _closure_edges(name: str) -> frozenset[str]:
    return frozenset(module_imports(name))


@cache
def code_version(module_names: tuple[str, ...]) -> str:
    """Hash of the source of the import closure of ``module_names`` (:func:`import_closure`): a change in any module
    a stage runs invalidates the stage. The stages' ``*_MODULES`` lists are only the entry points."""
    digest = hashlib.sha256()
    for name in import_closure(tuple(sorted(set(module_names)))):
        digest.update(name.encode() + b"\0")
        digest.update(module_source(name).encode() + b"\0")
    return digest.hexdigest()[:16]


def clear_code_cache() -> None:
    """Forget the memoised import closures and code versions (tests that change a module's source)."""
    for fn in (import_closure, _closure_edges, code_version):
        fn.cache_clear()


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
