"""Bad input: one clear line naming the key or value and the fix, exit 2,
no traceback, no password, nothing left behind."""

import os
import subprocess
import sys

from sqlalchemy.engine import make_url

from nose2_sqltx.config import ENVIRONMENT, PUBLIC_KEYS
from tests.support import PYTHONPATH, ROOT, SCENARIOS, FunctionalTest, dsn, each_target, run_nose2

SECRET = "s3cret-pw"


class OneLineErrorTest(FunctionalTest):
    def assertOneLineError(self, run, *fragments):
        self.assertEqual(run.returncode, 2, run.output)
        self.assertNotIn("Traceback", run.output)
        self.assertNotIn(SECRET, run.output)
        lines = [line for line in run.output.splitlines() if line.strip()]
        self.assertEqual(len(lines), 1, run.output)
        self.assertTrue(lines[0].startswith("nose2-sqltx: error: "), lines[0])
        for fragment in fragments:
            self.assertIn(fragment, lines[0])
        self.assertDatabaseUnchanged()


class TestBadInput(OneLineErrorTest):
    def test_config_file_mistakes(self):
        cases = {
            "unknown_key": ("[sqltx] dns: unknown key", "Did you mean 'dsn'?"),
            "bad_module": ("[sqltx] metadata = no_such_module:Base", "cannot import module 'no_such_module'"),
            "bad_attr": ("[sqltx] metadata = models:Bsae", "has no attribute 'Bsae'"),
            "wrong_kind": ("[sqltx] metadata = models:not_metadata", "not a MetaData or a declarative Base"),
            "bad_path": ("[sqltx] metadata = models.Base", "not a module:attribute path"),
            "not_callable": ("[sqltx] fixtures = models:not_metadata", "not a callable"),
            "fixture_raises": ("fixture broken_fixture failed", "ValueError: the fixture broke on purpose",
                               "(at models.py:"),
            "bad_duration": ("[sqltx] lock-timeout = 10", "Write 10s or 10ms"),
            "huge_timeout": ("[sqltx] lock-timeout = 100000min: longer than the databases accept (about 24 days)",
                             "Write a shorter duration, or 0 to turn it off"),
            "misspelt_section": ("section [sqlxt]: nose2-sqltx reads no such section, and there is no [sqltx]. "
                                 "Did you mean [sqltx]? Rename the section",),
            "clashing_tables": ("creating the schema (metadata) failed: two of the metadata define a table audit "
                                "(columns id, what; and id, at)", "Give the tables different names or schemas"),
            "listener_raises": ("models:listener_engine's connect listener _make_listener_engine.<locals>.set_up, "
                                "run on the run's connection failed: ValueError: the listener broke on purpose",
                                "leave models:listener_engine out of engines"),
        }
        for cfg, fragments in cases.items():
            with self.subTest(cfg=cfg):
                run = run_nose2("badinput", "-c", f"{cfg}.cfg")
                self.assertOneLineError(run, *fragments)

    @each_target("postgresql+psycopg2", "postgresql+psycopg", "mysql+pymysql", "sqlite")
    def test_a_fixture_that_commits_is_named_and_nothing_is_left(self, target):
        run = run_nose2("badinput", "-c", "fixture_commits.cfg", target=target)
        self.assertOneLineError(run, "fixture committing_fixture failed: it ended the run's transaction with "
                                "'COMMIT' (as SQL)", "nose2-sqltx dropped what it committed",
                                "leave COMMIT and ROLLBACK out of them")

    def test_dsn_mistakes_never_show_the_password(self):
        cases = {
            f"postgresql://postgres:{SECRET}@127.0.0.1:1/test": (
                "cannot connect to postgresql://postgres:***@127.0.0.1:1/test", "refused"),
            f"postgresql+psycopg://postgres:{SECRET}@127.0.0.1:1/test": ("cannot connect", "postgres:***@"),
            make_url(dsn()).set(database="no_such_db").render_as_string(False): (
                "database \"no_such_db\" does not exist",),
            f"postgresql://no_such_role:{SECRET}@127.0.0.1:5432/test": ("role \"no_such_role\" does not exist",),
            f"postgres:{SECRET}@:::what": ("environment variable SQLTX_DSN = postgres:***@:::what",
                                           "not a database URL"),
            f"postgresql://u:{SECRET}@with@127.0.0.1:1/test": ("cannot connect",),
            "oracle://u@h/d": ("database 'oracle' is not supported", "Supported: mariadb, mysql, postgresql, sqlite"),
            f"mysql+pymysql://root:{SECRET}@127.0.0.1:1/test": (
                "cannot connect to mysql+pymysql://root:***@127.0.0.1:1/test", "Can't connect"),
            f"mysql+mysqldb://root:{SECRET}@127.0.0.1:1/test": ("cannot connect to mysql+mysqldb://root:***@",),
            "mysql+mysqlconnector://u@h/d": ("driver 'mysqlconnector' is not supported for MySQL", "mysql+pymysql"),
            "sqlite:////no/such/directory/x.db": ("cannot connect to sqlite:////no/such/directory/x.db",
                                                  "unable to open database file"),
            "postgresql+pg8000://u@h/d": ("driver 'pg8000' is not supported", "postgresql+psycopg2"),
        }
        for value, fragments in cases.items():
            with self.subTest(dsn=value.replace(SECRET, "***")):
                run = run_nose2("badinput", "-c", "ok.cfg", env={"SQLTX_DSN": value})
                self.assertOneLineError(run, *fragments)


    def test_missing_driver_package(self):
        hide = str(SCENARIOS / "badinput" / "no_psycopg")
        run = run_nose2("badinput", "-c", "ok.cfg", driver="psycopg",
                        env={"PYTHONPATH": f"{hide}{os.pathsep}{PYTHONPATH}"})
        self.assertOneLineError(run, "environment variable SQLTX_DSN = postgresql+psycopg://",
                                "the driver 'psycopg' is not installed", "pip install 'psycopg[binary]'")

    def test_a_url_without_a_driver_takes_an_installed_one(self):
        # SQLAlchemy 2.1 reads postgresql:// as psycopg 3, which a plain
        # install of nose2-sqltx does not bring: psycopg2 is taken instead.
        hide = str(SCENARIOS / "badinput" / "no_psycopg")
        url = make_url(dsn()).set(drivername="postgresql").render_as_string(False)
        run = run_nose2("badinput", "-c", "ok.cfg",
                        env={"SQLTX_DSN": url, "PYTHONPATH": f"{hide}{os.pathsep}{PYTHONPATH}"})
        self.assertEqual(run.returncode, 0, run.output)
        self.assertRegex(run.stderr, r"nose2-sqltx: PostgreSQL [\d.]+ at postgresql(\+psycopg2)?://")
        self.assertDatabaseUnchanged()


class TestActivation(FunctionalTest):
    def assertActive(self, run):
        self.assertEqual(run.returncode, 0, run.output)
        self.assertIn("Ran 1 test", run.stderr)
        self.assertEqual(run.stderr.count("nose2-sqltx: PostgreSQL"), 1, run.output)
        self.assertDatabaseUnchanged()

    def test_plugin_on_the_command_line(self):
        self.assertActive(run_nose2("badinput", "-c", "cmdline.cfg", "--plugin", "nose2_sqltx"))

    def test_plugin_in_config_and_on_the_command_line(self):
        self.assertActive(run_nose2("badinput", "-c", "ok.cfg", "--plugin", "nose2_sqltx"))

    def test_switched_off_in_config_and_on_from_the_command_line(self):
        self.assertActive(run_nose2("badinput", "-c", "cmdline_off.cfg", "--plugin", "nose2_sqltx", "--sqltx"))


class TestNotActive(FunctionalTest):
    NEEDS = "DatabaseTest needs the nose2-sqltx plugin: run `nose2 --plugin nose2_sqltx`"

    def test_switched_off_in_config(self):
        run = run_nose2("badinput", "-c", "off.cfg")
        self.assertEqual(run.returncode, 1, run.output)
        self.assertIn(self.NEEDS, run.stderr)
        self.assertNotIn("nose2_sqltx/", run.stderr, "internal frames shown")

    def test_percent_encoded_password_in_config_file(self):
        run = run_nose2("percent", set_dsn=False)
        self.assertEqual(run.returncode, 0, run.output)
        self.assertIn("postgresql+psycopg2://postgres:***@127.0.0.1:5432/test", run.stderr)
        self.assertNotIn("p@ssw0rd", run.output)
        self.assertNotIn("p%40ssw0rd", run.output)
        self.assertDatabaseUnchanged()


class TestHelpAndOptions(OneLineErrorTest):
    def test_help_lists_commands_keys_and_environment_variables(self):
        run = subprocess.run([sys.executable, "-m", "nose2_sqltx", "--help"], capture_output=True, text=True,
                             env={**os.environ, "PYTHONPATH": PYTHONPATH}, timeout=60)
        self.assertEqual(run.returncode, 0, run.stderr)
        for word in (*PUBLIC_KEYS, *ENVIRONMENT.values(), "stop-server", "--sqltx-dsn"):
            self.assertIn(f"  {word}", run.stdout)
        # the README's table of keys has a row for each of them
        readme = (ROOT / "README.md").read_text()
        for key in PUBLIC_KEYS:
            self.assertIn(f"| `{key}` |", readme)

    def test_an_unknown_command_is_one_line(self):
        run = subprocess.run([sys.executable, "-m", "nose2_sqltx", "strat-server"], capture_output=True, text=True,
                             env={**os.environ, "PYTHONPATH": PYTHONPATH}, timeout=60)
        self.assertEqual(run.returncode, 2)
        self.assertEqual(run.stdout, "")
        self.assertEqual(run.stderr.strip().splitlines(),
                         ["nose2-sqltx: error: unknown command: strat-server. usage: python -m nose2_sqltx "
                          "[--help | stop-server | merge-durations OUT FILE...]"])

    def test_merge_durations_without_files_is_one_line(self):
        run = subprocess.run([sys.executable, "-m", "nose2_sqltx", "merge-durations", "out.json"], capture_output=True,
                             text=True, env={**os.environ, "PYTHONPATH": PYTHONPATH}, timeout=60)
        self.assertEqual(run.returncode, 2)
        self.assertEqual(run.stderr.strip().splitlines(),
                         ["nose2-sqltx: error: merge-durations needs OUT and at least one FILE. usage: python -m "
                          "nose2_sqltx [--help | stop-server | merge-durations OUT FILE...]"])

    def test_nose2_help_shows_the_plugins_option(self):
        run = run_nose2("plain", "-h")
        self.assertEqual(run.returncode, 0, run.output)
        self.assertIn("--sqltx-dsn", run.stdout + run.stderr)

    def test_sqltx_dsn_wins_for_one_run(self):
        # SQLTX_DSN points nowhere; the option gives the database for this run
        run = run_nose2("plain", "--sqltx-dsn", dsn(), env={"SQLTX_DSN": "postgresql://postgres@127.0.0.1:1/test"})
        self.assertEqual(run.returncode, 0, run.output)
        self.assertDatabaseUnchanged()
        bad = run_nose2("plain", "--sqltx-dsn", f"postgresql://u:{SECRET}@:::x")
        self.assertOneLineError(bad, "command-line option --sqltx-dsn = postgresql://u:***@:::x: not a database URL")
