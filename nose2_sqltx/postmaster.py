"""Servers on the disk: their directories, their processes, and the ones runs left behind.

A throwaway server lives in a directory of its own (:data:`DIR_PREFIX`),
with a marker file that names the run that made it. :func:`reap_orphans`
stops and removes the servers of runs that died (SIGKILL), never one it did
not make; :func:`stop_kept_servers` stops those ``keep-server`` left running.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import tempfile
import time
from pathlib import Path

from .environment import CACHE_DIR_ENV, SERVER_DIR_ENV

__unittest = True

__all__ = ["DIR_PREFIX", "MARKER", "cache_root", "default_base_dir", "reap_orphans", "stop_kept_servers",
           "process_start", "postmaster_pid", "is_our_postmaster", "stop_postmaster", "is_ready", "read_marker",
           "POLL_S"]

DIR_PREFIX = "nose2-sqltx-pg-"
MARKER = "nose2-sqltx.json"
_SHM = Path("/dev/shm")
_SHM_MIN_FREE = 1 << 30
#: how often a starting or stopping server is looked at
POLL_S = 0.002


def cache_root() -> Path:
    """Where initialized data directories (and kept servers' notes) live."""
    explicit = os.environ.get(CACHE_DIR_ENV)
    if explicit:
        return Path(explicit)
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "nose2-sqltx"


def process_start(pid: int) -> str | None:
    """A token that changes when ``pid`` is reused: its start time (Linux), or
    just "alive" elsewhere; None if there is no such process."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[19]
    except FileNotFoundError:
        return None
    except OSError:
        pass
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    except PermissionError:
        pass
    return "alive"


def postmaster_pid(data: Path) -> int | None:
    try:
        return int((data / "postmaster.pid").read_text().split("\n", 1)[0])
    except (OSError, ValueError):
        return None


def is_our_postmaster(pid: int, data: Path) -> bool:
    """Whether ``pid`` is a postgres running on ``data`` (never someone else's)."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            args = f.read().split(b"\0")
    except FileNotFoundError:
        return False
    except OSError:
        return process_start(pid) is not None  # no /proc: trust postmaster.pid
    return str(data).encode() in args


def stop_postmaster(pid: int, data: Path, timeout: float = 10.0) -> None:
    if not is_our_postmaster(pid, data):
        return
    try:
        os.kill(pid, signal.SIGQUIT)  # immediate shutdown
    except ProcessLookupError:
        return
    deadline = time.monotonic() + timeout
    while is_our_postmaster(pid, data) and time.monotonic() < deadline:
        time.sleep(POLL_S)
    if is_our_postmaster(pid, data):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def read_marker(directory: Path) -> dict[str, object] | None:
    try:
        data = json.loads((directory / MARKER).read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def default_base_dir() -> Path:
    """Where a server's directory goes: ``$SQLTX_SERVER_DIR``, else ``/dev/shm``
    when it is a writable tmpfs with 1 GiB free (every start copies the
    cached data directory, and on a busy disk that copy is what costs:
    0.07 s to 1 s for the same 29 MB here), else the temp directory."""
    explicit = os.environ.get(SERVER_DIR_ENV)
    if explicit:
        return Path(explicit)
    try:
        stat = os.statvfs(_SHM)
        if os.access(_SHM, os.W_OK | os.X_OK) and stat.f_bavail * stat.f_frsize >= _SHM_MIN_FREE:
            return _SHM
    except OSError:
        pass
    return Path(tempfile.gettempdir())


def reap_orphans(base: Path | None = None) -> list[Path]:
    """Stop and remove servers whose runs died (SIGKILL); return their directories.

    Only directories this module made are touched (name prefix and marker
    file), only if the run that made them is gone, and never a kept server.
    """
    bases = {Path(base)} if base else {default_base_dir(), _SHM, Path(tempfile.gettempdir())}
    reaped = []
    for directory in (d for b in bases for d in b.glob(f"{DIR_PREFIX}*")):
        marker = read_marker(directory)
        if marker is None or marker.get("kept"):
            continue  # not ours to judge (or still being set up)
        owner = marker.get("owner_pid")
        if isinstance(owner, int) and process_start(owner) == marker.get("owner_start"):
            continue  # its run is alive
        pid = postmaster_pid(directory / "data")
        if pid is not None:
            stop_postmaster(pid, directory / "data")
        shutil.rmtree(directory, ignore_errors=True)
        reaped.append(directory)
    return reaped


def stop_kept_servers() -> list[str]:
    """Stop every server left running by ``keep-server``; describe each one stopped."""
    stopped = []
    root = cache_root()
    for note in sorted(root.glob("kept-*.json")):
        try:
            kept = json.loads(note.read_text())
            directory, pid = Path(kept["directory"]), int(kept["pid"])
        except (OSError, ValueError, KeyError, TypeError):
            note.unlink(missing_ok=True)
            continue
        stop_postmaster(pid, directory / "data")
        shutil.rmtree(directory, ignore_errors=True)
        note.unlink(missing_ok=True)
        stopped.append(f"PostgreSQL {kept.get('version', '?')} in {directory} (pid {pid})")
    return stopped


def is_ready(data: Path) -> bool:
    """postmaster.pid's 8th line is the server's status (PostgreSQL 10+)."""
    try:
        lines = (data / "postmaster.pid").read_text().split("\n")
    except OSError:
        return False
    return len(lines) > 7 and lines[7].strip() == "ready"


