"""A throwaway PostgreSQL server: the process and its directory, nothing else.

::

    with TemporaryPostgres() as pg:
        engine = create_engine(pg.url)

Start: find the server binaries, remove servers that killed runs left behind
(:func:`reap_orphans`), copy a cached ``initdb`` result (made once per server
version and initdb options, so only the first start pays for initdb) into a
private directory, and run ``postgres`` directly with fsync, synchronous
commit and full-page writes off, on a unix socket in that directory and no
TCP port. Readiness is read from ``postmaster.pid``, polled every 2 ms.
Stop: SIGQUIT (immediate shutdown: nothing in a throwaway server is worth
a checkpoint), then the directory is removed.

As root (CI containers), initdb and postgres refuse to run, so they run as
an unprivileged account that already exists (``postgres``, else ``nobody``);
no account is created and no permission is changed outside the server's own
directory. Only the process that started the server stops it: a forked
child (nose2's multiprocess workers, a test that forks) never does.
"""

from __future__ import annotations

import atexit
import glob
import hashlib
import json
import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import weakref
import time
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

from sqlalchemy.engine import URL

from .errors import ServerBinariesNotFoundError, ServerStartError

__unittest = True

__all__ = ["TemporaryPostgres", "is_throwaway", "find_bindir", "reap_orphans", "stop_kept_servers", "cache_root",
           "default_base_dir"]

DIR_PREFIX = "nose2-sqltx-pg-"
MARKER = "nose2-sqltx.json"
BINDIR_ENV = "SQLTX_PG_BINDIR"
SERVER_DIR_ENV = "SQLTX_SERVER_DIR"
_SHM = Path("/dev/shm")
_SHM_MIN_FREE = 1 << 30
CACHE_ENV = "SQLTX_CACHE_DIR"
INITDB_OPTIONS = (
    "-U", "postgres", "--auth=trust", "-E", "UTF8", "--locale=C", "--no-sync", "--no-instructions",
    "--wal-segsize=1",  # 1 MB WAL segments: 15 MB less to copy at every start
)
# dynamic shared memory as files in the data directory: removed with it,
# even when the server had to be killed.
SERVER_OPTIONS = ("fsync=off", "synchronous_commit=off", "full_page_writes=off", "dynamic_shared_memory_type=mmap")
READY_TIMEOUT_S = 60.0
_POLL_S = 0.002

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
    "Install the PostgreSQL server (Debian/Ubuntu: apt-get install postgresql; Fedora/RHEL: "
    "dnf install postgresql-server; macOS: brew install postgresql), name its bin directory in "
    f"pg-bindir under [sqltx] or {BINDIR_ENV}, or set dsn to use a server you already have"
)


def _has_server(bindir: Path) -> bool:
    return all(os.access(bindir / name, os.X_OK) for name in ("initdb", "postgres"))


def _version_key(path: str) -> tuple[int, ...]:
    return tuple(int(n) for n in re.findall(r"\d+", path)) or (0,)


def find_bindir(configured: str | None = None) -> Path:
    """The directory holding ``initdb`` and ``postgres``.

    ``configured`` (or ``$SQLTX_PG_BINDIR``) wins and must be right; otherwise
    ``pg_config --bindir``, the usual install locations (newest version
    first) and ``PATH`` are tried in that order.
    """
    configured = os.environ.get(BINDIR_ENV) or configured
    if configured:
        path = Path(configured).expanduser()
        if _has_server(path):
            return path
        raise ServerBinariesNotFoundError([str(path)], _INSTALL_HINT)
    looked: list[str] = []
    pg_config = shutil.which("pg_config")
    if pg_config:
        looked.append("pg_config --bindir")
        try:
            out = subprocess.run([pg_config, "--bindir"], capture_output=True, text=True, timeout=10).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            out = ""
        if out and _has_server(Path(out)):
            return Path(out)
    for pattern in _BINDIR_PATTERNS:
        looked.append(pattern)
        for candidate in sorted(glob.glob(pattern), key=_version_key, reverse=True):
            if _has_server(Path(candidate)):
                return Path(candidate)
    looked.append("PATH")
    found = shutil.which("postgres")
    if found:
        bindir = Path(os.path.realpath(found)).parent
        if _has_server(bindir):
            return bindir
    raise ServerBinariesNotFoundError(looked, _INSTALL_HINT)


@dataclass(frozen=True)
class _Account:
    uid: int
    gid: int
    name: str


def _server_account() -> _Account | None:
    """None when we may run the server ourselves; else the account to run it as."""
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "nobody"):
        try:
            entry = pwd.getpwnam(name)
        except KeyError:
            continue
        if entry.pw_uid != 0:
            return _Account(entry.pw_uid, entry.pw_gid, name)
    raise ServerStartError(
        "running as root, and there is no unprivileged account (postgres or nobody) to run the "
        "PostgreSQL server as, which refuses to run as root",
        log_tail="",
        fix="run the tests as another user, or set dsn to use a server you already have",
    )


def _unreachable_parent(path: Path, account: _Account) -> Path | None:
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


def _chown_tree(path: Path, account: _Account | None) -> None:
    if account is None:
        return
    os.lchown(path, account.uid, account.gid)
    for root, dirs, files in os.walk(path):
        for name in dirs + files:
            os.lchown(os.path.join(root, name), account.uid, account.gid)


def cache_root() -> Path:
    """Where initialized data directories (and kept servers' notes) live."""
    explicit = os.environ.get(CACHE_ENV)
    if explicit:
        return Path(explicit)
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "nose2-sqltx"


def _process_start(pid: int) -> str | None:
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


def _postmaster_pid(data: Path) -> int | None:
    try:
        return int((data / "postmaster.pid").read_text().split("\n", 1)[0])
    except (OSError, ValueError):
        return None


def _is_our_postmaster(pid: int, data: Path) -> bool:
    """Whether ``pid`` is a postgres running on ``data`` (never someone else's)."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            args = f.read().split(b"\0")
    except FileNotFoundError:
        return False
    except OSError:
        return _process_start(pid) is not None  # no /proc: trust postmaster.pid
    return str(data).encode() in args


def _stop_postmaster(pid: int, data: Path, timeout: float = 10.0) -> None:
    if not _is_our_postmaster(pid, data):
        return
    try:
        os.kill(pid, signal.SIGQUIT)  # immediate shutdown
    except ProcessLookupError:
        return
    deadline = time.monotonic() + timeout
    while _is_our_postmaster(pid, data) and time.monotonic() < deadline:
        time.sleep(_POLL_S)
    if _is_our_postmaster(pid, data):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def _read_marker(directory: Path) -> dict[str, object] | None:
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
        marker = _read_marker(directory)
        if marker is None or marker.get("kept"):
            continue  # not ours to judge (or still being set up)
        owner = marker.get("owner_pid")
        if isinstance(owner, int) and _process_start(owner) == marker.get("owner_start"):
            continue  # its run is alive
        pid = _postmaster_pid(directory / "data")
        if pid is not None:
            _stop_postmaster(pid, directory / "data")
        shutil.rmtree(directory, ignore_errors=True)
        reaped.append(directory)
    return reaped


#: servers running in this process (for :func:`is_throwaway`)
_running: weakref.WeakSet[TemporaryPostgres] = weakref.WeakSet()


def is_throwaway(url: URL) -> bool:
    """Whether ``url`` names a server a :class:`TemporaryPostgres` of this
    process runs (the production guard trusts those: they are the run's own)."""
    for server in list(_running):
        if server.directory is None:
            continue
        if url.query.get("host") == str(server.directory) and str(url.port or url.query.get("port")) == str(server.port):
            return True
        if server.tcp and url.host in ("127.0.0.1", "localhost") and url.port == server.port:
            return True
    return False


class TemporaryPostgres:
    """A private PostgreSQL server for one run (a context manager).

    ``bindir``: where ``initdb`` and ``postgres`` are (default: found, see
    :func:`find_bindir`). ``keep``: leave the server running at :meth:`stop`
    and reuse it at the next :meth:`start` (stop it with
    ``python -m nose2_sqltx stop-server``). ``tcp``: also listen on a free
    port of 127.0.0.1. ``base_dir``: where the server's directory is made
    (default: :func:`default_base_dir`).
    """

    def __init__(self, *, bindir: str | None = None, keep: bool = False, tcp: bool = False,
                 base_dir: str | Path | None = None) -> None:
        self._bindir_setting = bindir
        self.keep = keep
        self.tcp = tcp
        self.base_dir = Path(base_dir) if base_dir else default_base_dir()
        self.directory: Path | None = None
        self.version = ""
        self.port = 5432
        self.start_kind = ""  # "cold", "warm" or "reused"
        self.timings: dict[str, float] = {}
        self._proc: subprocess.Popen[bytes] | None = None
        self._caching: threading.Thread | None = None
        self._pid: int | None = None
        self._owner = os.getpid()

    # -- public ----------------------------------------------------------------
    @property
    def url(self) -> URL:
        """A SQLAlchemy URL (psycopg2) for the server's ``postgres`` database:
        over TCP when ``tcp`` was asked for, else over the unix socket."""
        if self.directory is None:
            raise RuntimeError("the server is not running")
        if self.tcp:
            return URL.create("postgresql+psycopg2", username="postgres", host="127.0.0.1",
                              port=self.port, database="postgres")
        return URL.create("postgresql+psycopg2", username="postgres", database="postgres",
                          query={"host": str(self.directory), "port": str(self.port)})

    def describe(self) -> str:
        how = {"cold": "cold start with initdb", "warm": "warm start from the cache", "reused": "kept server reused"}
        return f"throwaway server, {how.get(self.start_kind, self.start_kind)} in {self.timings.get('start', 0):.2f}s"

    def __enter__(self) -> TemporaryPostgres:
        self.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()

    def start(self) -> None:
        """Start the server (or reuse a kept one); on any failure nothing is left."""
        started = time.perf_counter()
        bindir = find_bindir(self._bindir_setting)
        self.version = self._server_version(bindir)
        reap_orphans()
        key = self._cache_key(bindir)
        if self.keep and self._reuse(key):
            self.start_kind = "reused"
            self.timings["start"] = time.perf_counter() - started
            _running.add(self)
            return
        account = _server_account()
        try:
            self._create_directory(account)
            assert self.directory is not None
            data = self.directory / "data"
            template = cache_root() / key
            if (template / "PG_VERSION").is_file():
                self.start_kind = "warm"
                shutil.copytree(template, data, symlinks=True)
                _chown_tree(data, account)
            else:
                # initdb next to the data directory, start from a copy of it, and
                # fill the (on-disk, slower) cache from it while the tests run.
                self.start_kind = "cold"
                fresh = self.directory / "initdb"
                self._initdb(bindir, fresh, account)
                shutil.copytree(fresh, data, symlinks=True)
                _chown_tree(data, account)
                self._caching = threading.Thread(target=self._store_template, args=(fresh, template),
                                                 name="nose2-sqltx-cache", daemon=True)
                self._caching.start()
            self._launch(bindir, data, account)
            if self.keep:
                self._write_marker(kept=True)
                self._kept_note(key).write_text(json.dumps({"directory": str(self.directory), "port": self.port,
                                                            "pid": self._pid, "version": self.version}))
            else:
                atexit.register(self.stop)
        except BaseException:
            self._discard()
            raise
        _running.add(self)
        self.timings["start"] = time.perf_counter() - started

    def stop(self) -> None:
        """Stop the server and remove its directory (a kept server stays)."""
        if os.getpid() != self._owner:
            return  # a forked child: the server is its parent's
        atexit.unregister(self.stop)
        _running.discard(self)
        if self.keep or self.directory is None:
            return
        started = time.perf_counter()
        self._discard()
        self.timings["stop"] = time.perf_counter() - started

    # -- steps -------------------------------------------------------------------
    def _server_version(self, bindir: Path) -> str:
        try:
            out = subprocess.run([str(bindir / "postgres"), "--version"], capture_output=True, text=True, timeout=30)
        except OSError as exc:
            raise _cannot_run(bindir / "postgres", None, exc) from exc
        match = re.search(r"(\d+(?:\.\d+)*)", out.stdout)
        if out.returncode != 0 or not match:
            raise ServerStartError(f"{bindir / 'postgres'} --version failed", log_tail=(out.stdout + out.stderr)[-2000:])
        return match.group(1)

    def _cache_key(self, bindir: Path) -> str:
        # The template depends on the server build and on initdb's options.
        digest = hashlib.sha256(json.dumps([str(bindir.resolve()), INITDB_OPTIONS]).encode()).hexdigest()[:12]
        return f"pg{self.version}-{digest}"

    def _kept_note(self, key: str) -> Path:
        return cache_root() / f"kept-{key}.json"

    def _create_directory(self, account: _Account | None) -> None:
        self.base_dir.mkdir(parents=True, exist_ok=True)
        blocked = _unreachable_parent(self.base_dir, account) if account else None
        if blocked is not None and account is not None:
            raise ServerStartError(
                f"the server runs as {account.name!r} (PostgreSQL refuses root), and {account.name!r} "
                f"cannot enter {blocked}",
                log_tail="",
                fix=f"point server-dir (or {SERVER_DIR_ENV}) at a directory every user can enter, such as /tmp",
            )
        self.directory = Path(tempfile.mkdtemp(prefix=DIR_PREFIX, dir=self.base_dir))
        self._write_marker(kept=False)
        _chown_tree(self.directory, account)

    def _write_marker(self, *, kept: bool) -> None:
        assert self.directory is not None
        marker = {"owner_pid": self._owner, "owner_start": _process_start(self._owner), "kept": kept}
        (self.directory / MARKER).write_text(json.dumps(marker))

    def _run_as(self, account: _Account | None) -> dict[str, object]:
        if account is None:
            return {}
        return {"user": account.uid, "group": account.gid, "extra_groups": []}

    def _initdb(self, bindir: Path, data: Path, account: _Account | None) -> None:
        try:
            proc = subprocess.run(
                [str(bindir / "initdb"), "-D", str(data), *INITDB_OPTIONS],
                capture_output=True, text=True, timeout=300, **self._run_as(account),  # type: ignore[call-overload]
            )
        except OSError as exc:
            raise _cannot_run(bindir / "initdb", account, exc) from exc
        if proc.returncode != 0:
            raise ServerStartError("initdb failed", log_tail=_tail(proc.stdout + proc.stderr))

    def _store_template(self, fresh: Path, template: Path) -> None:
        """Keep a fresh initdb for the next runs, then drop it from the server's
        directory (atomic rename; a cache that cannot be written only costs speed)."""
        partial = template.parent / f"{template.name}.partial-{os.getpid()}"
        try:
            template.parent.mkdir(parents=True, exist_ok=True)
            shutil.copytree(fresh, partial, symlinks=True)
            os.rename(partial, template)
        except OSError:
            shutil.rmtree(partial, ignore_errors=True)
        shutil.rmtree(fresh, ignore_errors=True)

    def _launch(self, bindir: Path, data: Path, account: _Account | None) -> None:
        assert self.directory is not None
        listen = ""  # no TCP at all: the unix socket only
        if self.tcp:
            self.port = _free_port()
            listen = "127.0.0.1"
        args = [str(bindir / "postgres"), "-D", str(data), "-k", str(self.directory), "-p", str(self.port),
                "-c", f"listen_addresses={listen}"]
        for option in SERVER_OPTIONS:
            args += ["-c", option]
        log_path = self.directory / "server.log"
        with open(log_path, "wb") as log:
            # Its own session: Ctrl-C in the terminal reaches nose2, which stops
            # the server in order, and not the server behind its back.
            try:
                self._proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                              start_new_session=True, **self._run_as(account))  # type: ignore[call-overload]
            except OSError as exc:
                raise _cannot_run(bindir / "postgres", account, exc) from exc
        self._pid = self._proc.pid
        deadline = time.monotonic() + READY_TIMEOUT_S
        while True:
            if _is_ready(data):
                return
            if self._proc.poll() is not None:
                raise ServerStartError(f"the server exited with status {self._proc.returncode} while starting",
                                       log_tail=_tail(log_path.read_text(errors="replace")))
            if time.monotonic() > deadline:
                raise ServerStartError(f"the server was not ready after {READY_TIMEOUT_S:.0f}s",
                                       log_tail=_tail(log_path.read_text(errors="replace")))
            time.sleep(_POLL_S)

    def _reuse(self, key: str) -> bool:
        note = self._kept_note(key)
        try:
            kept = json.loads(note.read_text())
            directory, pid, port = Path(kept["directory"]), int(kept["pid"]), int(kept["port"])
        except (OSError, ValueError, KeyError, TypeError):
            return False
        if _is_our_postmaster(pid, directory / "data") and _is_ready(directory / "data"):
            self.directory, self.port, self._pid = directory, port, pid
            return True
        note.unlink(missing_ok=True)  # stale: its server is gone
        return False

    def _discard(self) -> None:
        """Stop the server if running and remove the directory: always safe to call."""
        if self._caching is not None:
            self._caching.join()  # it reads from the directory removed below
            self._caching = None
        directory, self.directory = self.directory, None
        if self._proc is not None and self._proc.poll() is None:
            self._proc.send_signal(signal.SIGQUIT)
            try:
                self._proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
        elif self._pid is not None and directory is not None:
            _stop_postmaster(self._pid, directory / "data")
        self._proc = None
        if directory is not None:
            shutil.rmtree(directory, ignore_errors=True)


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
        _stop_postmaster(pid, directory / "data")
        shutil.rmtree(directory, ignore_errors=True)
        note.unlink(missing_ok=True)
        stopped.append(f"PostgreSQL {kept.get('version', '?')} in {directory} (pid {pid})")
    return stopped


def _is_ready(data: Path) -> bool:
    """postmaster.pid's 8th line is the server's status (PostgreSQL 10+)."""
    try:
        lines = (data / "postmaster.pid").read_text().split("\n")
    except OSError:
        return False
    return len(lines) > 7 and lines[7].strip() == "ready"


def _cannot_run(program: Path, account: _Account | None, exc: OSError) -> ServerStartError:
    who = f" as {account.name!r} (PostgreSQL refuses root)" if account else ""
    return ServerStartError(
        f"could not run {program}{who}: {exc.strerror or exc}", log_tail="",
        fix=f"make {program.parent} and its programs readable and executable{' by ' + repr(account.name) if account else ''}",
    )


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _tail(text: str, lines: int = 15) -> str:
    return "\n".join(text.rstrip().splitlines()[-lines:])
