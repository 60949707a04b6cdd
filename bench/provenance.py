"""Provenance carried by every record: code version, packages, device, command."""

from __future__ import annotations

import platform
import shlex
import subprocess
import sys
from functools import cache
from importlib import metadata
from pathlib import Path
from typing import Any

from crowdbench import CHECKOUT

PACKAGES = ("crowdbench", "torch", "torchvision", "numpy", "scipy", "opencv-python-headless", "pydantic")


@cache
def git_state() -> dict[str, Any]:
    """Commit and dirty flag of the source checkout (``unknown`` for an installed wheel, never the commit of a
    repository that happens to hold its virtualenv)."""
    if CHECKOUT is None:
        return {"commit": "unknown", "dirty": None}

    def git(*args: str) -> str:
        return subprocess.run(
            ["git", "-C", str(CHECKOUT), *args], capture_output=True, text=True, check=True, timeout=10
        ).stdout.strip()

    try:
        commit = git("rev-parse", "HEAD")
        dirty = bool(git("status", "--porcelain", "--untracked-files=no"))
    except (OSError, subprocess.SubprocessError):
        return {"commit": "unknown", "dirty": None}
    return {"commit": commit, "dirty": dirty}


@cache
def package_versions() -> dict[str, str]:
    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def device_description(device: str) -> str:
    """Human-readable name of the device a cell ran on."""
    if device.startswith("cuda"):
        import torch

        index = torch.device(device).index or 0
        return f"{device} ({torch.cuda.get_device_name(index)})"
    return f"cpu ({platform.processor() or platform.machine()}, {_threads()} threads)"


def _threads() -> int:
    import torch

    return torch.get_num_threads()


def command_line() -> str:
    return " ".join(shlex.quote(a) for a in [Path(sys.argv[0]).name, *sys.argv[1:]])


def provenance(device: str, wall_s: float, command: str, level: str) -> dict[str, Any]:
    return {
        **git_state(),
        "packages": package_versions(),
        "python": platform.python_version(),
        "device": device_description(device),
        "wall_s": round(wall_s, 2),
        "command": command,
        "level": level,
        "host": platform.node(),
    }
