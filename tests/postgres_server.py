"""A throw-away PostgreSQL server on loopback for tests: ``initdb`` into a temporary folder, ``postgres`` on a free
port of 127.0.0.1, one database, stopped and removed afterwards. Uses Debian's ``postgresql`` package (installed by
``.ci/run``); as root the server runs as the ``postgres`` user, since PostgreSQL refuses to run as root."""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def postgres_bin() -> Path | None:
    """The folder of ``initdb`` / ``postgres`` / ``pg_ctl`` (Debian: /usr/lib/postgresql/<major>/bin), or None."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if found:
        return Path(found[-1]).parent
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb and (Path(initdb).parent / "createdb").exists() else None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _as_server_user(cmd: list[str]) -> list[str]:
    if os.geteuid() != 0:
        return cmd
    return ["runuser", "-u", "postgres", "--", *cmd]


@contextmanager
def postgres_server() -> Iterator[str]:
    """Start a server in a fresh folder under the system temp dir (pytest's own folders are closed to the
    ``postgres`` user); yield its URL (database ``crowdbench``, user ``postgres``)."""
    bindir = postgres_bin()
    if bindir is None:
        raise FileNotFoundError("no PostgreSQL server binaries (initdb) found")
    base = Path(tempfile.mkdtemp(prefix="crowdbench-pg-"))
    data = base / "pgdata"
    data.mkdir(parents=True)
    if os.geteuid() == 0:
        shutil.chown(base, "postgres")
        shutil.chown(data, "postgres")
    port = _free_port()
    subprocess.run(
        _as_server_user([str(bindir / "initdb"), "-D", str(data), "-U", "postgres", "--auth=trust", "-E", "UTF8"]),
        check=True,
        capture_output=True,
    )
    log = data / "server.log"
    opts = f"-p {port} -c listen_addresses=127.0.0.1 -k {data} -c max_connections=60 -c fsync=off"
    subprocess.run(
        _as_server_user([str(bindir / "pg_ctl"), "-D", str(data), "-l", str(log), "-o", opts, "-w", "start"]),
        check=True,
        capture_output=True,
    )
    try:
        createdb = [str(bindir / "createdb"), "-h", "127.0.0.1", "-p", str(port), "-U", "postgres", "crowdbench"]
        for _ in range(50):
            made = subprocess.run(_as_server_user(createdb), capture_output=True, text=True)
            if made.returncode == 0:
                break
            time.sleep(0.2)
        else:
            raise RuntimeError(f"createdb failed: {made.stderr.strip()}")
        yield f"postgresql://postgres@127.0.0.1:{port}/crowdbench"
    finally:
        subprocess.run(
            _as_server_user([str(bindir / "pg_ctl"), "-D", str(data), "-m", "fast", "-w", "stop"]), capture_output=True
        )
        shutil.rmtree(base, ignore_errors=True)
