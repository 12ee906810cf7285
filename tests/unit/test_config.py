"""Settings parsing and masking: no database needed."""

import unittest

from nose2_sqltx.config import Settings, check_sections
from nose2_sqltx.errors import ConfigError
from nose2_sqltx.isolation import IsolatedDatabase
from nose2_sqltx.messages import mask_url


def settings(env=None, **keys):
    return Settings.from_options([(k.replace("_", "-"), v) for k, v in keys.items()], env or {})


class TestSettings(unittest.TestCase):
    def test_defaults(self):
        s = settings()
        self.assertIsNone(s.url)
        self.assertEqual((s.metadata, s.fixtures), ((), ()))
        self.assertEqual((s.lock_timeout_ms, s.statement_timeout_ms), (10_000, 60_000))

    def test_environment_wins_over_file(self):
        s = settings({"SQLTX_DSN": "postgresql://env@h/d"}, dsn="postgresql://file@h/d")
        self.assertEqual(s.url.username, "env")
        self.assertEqual(settings(dsn="postgresql://file@h/d").url.username, "file")
        # An error names where the value came from.
        with self.assertRaises(ConfigError) as caught:
            settings({"SQLTX_DSN": "oracle://u@h/d"}, dsn="postgresql://file@h/d")
        self.assertEqual(caught.exception.key, "SQLTX_DSN")
        with self.assertRaises(ConfigError) as caught:
            settings(dsn="postgresql+nodriver://u@h/d")
        self.assertEqual(caught.exception.key, "dsn")
        self.assertIn("driver 'nodriver' is not supported for PostgreSQL", str(caught.exception))

    def test_paths_one_per_line_or_comma(self):
        s = settings(metadata="a.b:Base\n c:meta, d:x.y")
        self.assertEqual(s.metadata, ("a.b:Base", "c:meta", "d:x.y"))

    def test_durations(self):
        self.assertEqual(settings(lock_timeout="500ms").lock_timeout_ms, 500)
        self.assertEqual(settings(lock_timeout="2min").lock_timeout_ms, 120_000)
        self.assertEqual(settings(statement_timeout="0").statement_timeout_ms, 0)
        for bad in ("10", "ten", "1.5s", "-1s", "100000min"):
            with self.assertRaises(ConfigError) as caught:
                settings(lock_timeout=bad)
            self.assertEqual(caught.exception.key, "lock-timeout")
        self.assertEqual(settings(statement_timeout="35791min").statement_timeout_ms, 2_147_460_000)
        with self.assertRaises(ConfigError) as caught:
            settings(statement_timeout="35792min")
        self.assertEqual(str(caught.exception), "[sqltx] statement-timeout = 35792min: longer than the databases "
                         "accept (about 24 days). Write a shorter duration, or 0 to turn it off")

    def test_a_misspelt_section_is_named(self):
        for wrong in ("sqlxt", "sqltx ", "SQLTX", "sql-tx"):
            with self.subTest(wrong=wrong), self.assertRaises(ConfigError) as caught:
                check_sections(["unittest", wrong])
            self.assertIn(f"section [{wrong}]", str(caught.exception))
            self.assertIn("Did you mean [sqltx]?", str(caught.exception))
        for fine in (["unittest", "sqltx"], ["unittest", "log-capture", "coverage"], [], ["sqltx", "sqlxt"]):
            with self.subTest(fine=fine):
                check_sections(fine)

    def test_unknown_key_suggests(self):
        with self.assertRaises(ConfigError) as caught:
            settings(metdata="m:B")
        self.assertIn("Did you mean 'metadata'?", str(caught.exception))
        settings(always_on="false")  # nose2's own key is allowed

    def test_server_settings_and_environment(self):
        s = settings(pg_bindir="/file/bin", keep_server="yes", server_tcp="on")
        self.assertEqual((s.pg_bindir, s.keep_server, s.server_tcp, s.server_dir), ("/file/bin", True, True, None))
        s = settings({"SQLTX_PG_BINDIR": "/env/bin", "SQLTX_KEEP_SERVER": "0", "SQLTX_SERVER_DIR": "/x"},
                     pg_bindir="/file/bin", keep_server="yes")
        self.assertEqual((s.pg_bindir, s.keep_server, s.server_dir), ("/env/bin", False, "/x"))
        with self.assertRaises(ConfigError) as caught:
            settings({"SQLTX_KEEP_SERVER": "maybe"})
        self.assertEqual(caught.exception.key, "SQLTX_KEEP_SERVER")
        self.assertIn("environment variable SQLTX_KEEP_SERVER = maybe", str(caught.exception))

    def test_a_choice_reads_the_same_in_config_and_without_a_runner(self):
        self.assertEqual(settings().async_test_loop, "run")
        self.assertEqual(settings(async_test_loop=" Own").async_test_loop, "own")
        with self.assertRaises(ConfigError) as in_config:
            settings(async_test_loop="shared")
        with self.assertRaises(ConfigError) as in_code:
            IsolatedDatabase("sqlite://", async_test_loop="shared")
        self.assertEqual(str(in_config.exception), str(in_code.exception))
        self.assertEqual(str(in_code.exception),
                         "[sqltx] async-test-loop = shared: is not one of run, own. Write run or own")
        self.assertEqual(IsolatedDatabase("sqlite://").async_test_loop, "run")

    def test_create_database(self):
        self.assertTrue(settings().create_database)
        self.assertFalse(settings(create_database="false").create_database)
        with self.assertRaises(ConfigError) as caught:
            settings(create_database="sometimes")
        self.assertIn("[sqltx] create-database = sometimes: not a yes/no value", str(caught.exception))

    def test_show_queries(self):
        self.assertFalse(settings().show_queries)
        self.assertTrue(settings(show_queries="true").show_queries)
        with self.assertRaises(ConfigError) as caught:
            settings(show_queries="always")
        self.assertIn("[sqltx] show-queries = always: not a yes/no value", str(caught.exception))

    def test_check_migrations(self):
        checked = settings(alembic=__file__, metadata="app:Base", check_migrations="true")
        self.assertTrue(checked.check_migrations)
        for keys, missing in (({"metadata": "app:Base"}, "alembic"), ({"alembic": __file__}, "metadata")):
            with self.subTest(missing=missing), self.assertRaises(ConfigError) as caught:
                settings(check_migrations="true", **keys)
            self.assertIn("[sqltx] check-migrations = true: needs alembic (the migrations that build the schema) "
                          f"and metadata (the models to compare it with); {missing} is not set", str(caught.exception))
        with self.assertRaises(ConfigError) as caught:
            settings(alembic=__file__, metadata="app:Base")
        self.assertIn("or set check-migrations = true", str(caught.exception))

    def test_flask_session(self):
        self.assertEqual(settings().flask_session, "app-context")
        self.assertEqual(settings(flask_session="Test").flask_session, "test")
        with self.assertRaises(ConfigError) as caught:
            settings(flask_session="request")
        self.assertIn("[sqltx] flask-session = request: is not one of app-context, test", str(caught.exception))

    def test_schema_cache(self):
        self.assertEqual(settings().schema_cache, "auto")
        for raw, value in (("on", "on"), ("True", "on"), ("yes", "on"), ("OFF", "off"), ("false", "off"),
                           ("auto", "auto")):
            self.assertEqual(settings(schema_cache=raw).schema_cache, value, raw)
        self.assertEqual(settings({"SQLTX_SCHEMA_CACHE": "off"}, schema_cache="on").schema_cache, "off")
        self.assertTrue(settings().caches_schema(throwaway=True))
        self.assertFalse(settings().caches_schema(throwaway=False))
        self.assertTrue(settings(schema_cache="on").caches_schema(throwaway=False))
        self.assertFalse(settings(schema_cache="off").caches_schema(throwaway=True))
        with self.assertRaises(ConfigError) as caught:
            settings(schema_cache="sometimes")
        self.assertEqual(str(caught.exception), "[sqltx] schema-cache = sometimes: is not auto, on or off. Write auto "
                         "(the cache with the throwaway server only), on (with a dsn's server too) or off")

    def test_schemas(self):
        self.assertEqual(settings().schemas, ())
        self.assertEqual(settings(schemas="billing, audit\n billing").schemas, ("billing", "audit"))
        self.assertEqual(settings(schemas="billing", dsn="postgresql://u@h/test").schemas, ("billing",))
        with self.assertRaises(ConfigError) as caught:
            settings(schemas="billing pg_catalog")
        self.assertEqual(str(caught.exception), "[sqltx] schemas = pg_catalog: is one of PostgreSQL's own schemas. "
                         "List the schemas the app's tables are in (billing, audit)")
        with self.assertRaises(ConfigError) as caught:
            settings(schemas="billing", dsn="mysql+pymysql://u@h/test")
        self.assertEqual(str(caught.exception), "[sqltx] schemas = billing: mysql keeps no schemas of a run's own "
                         "(only PostgreSQL does). Remove the key")

    def test_repr_masks_password(self):
        s = settings(dsn="postgresql://u:topsecret@h/d")
        self.assertNotIn("topsecret", repr(s))
        self.assertIn("u:***@h/d", repr(s))


class TestDatabaseSections(unittest.TestCase):
    """[sqltx:<name>]: the run's other databases."""

    def test_a_section_has_its_keys_and_its_environment_variable(self):
        s = Settings.from_options([("dsn", "postgresql://u@h/main")], {"SQLTX_DSN_ANALYTICS": "sqlite:///a.db"},
                                  databases=[("analytics", [("metadata", "app:AnalyticsBase"),
                                                            ("dsn", "postgresql://u@h/file")])])
        ((name, analytics),) = s.databases
        self.assertEqual(name, "analytics")
        self.assertEqual(analytics.metadata, ("app:AnalyticsBase",))
        self.assertEqual(analytics.url.get_backend_name(), "sqlite")  # the environment wins
        self.assertEqual(analytics.dsn_source, "SQLTX_DSN_ANALYTICS")
        self.assertEqual(s.url.database, "main")
        # SQLTX_DSN is [sqltx]'s alone
        s = Settings.from_options([], {"SQLTX_DSN": "postgresql://u@h/main"}, databases=[("analytics", [])])
        self.assertIsNone(s.databases[0][1].url)

    def test_errors_name_the_section(self):
        with self.assertRaises(ConfigError) as caught:
            Settings.from_options([], {}, databases=[("analytics", [("lock-timeout", "10")])])
        self.assertEqual(str(caught.exception), "[sqltx:analytics] lock-timeout = 10: the unit is missing. "
                                                "Write 10s or 10ms (0 turns it off)")
        with self.assertRaises(ConfigError) as caught:
            Settings.from_options([], {"SQLTX_DSN_ANALYTICS": "oracle://u@h/d"}, databases=[("analytics", [])])
        self.assertTrue(str(caught.exception).startswith("environment variable SQLTX_DSN_ANALYTICS = "),
                        str(caught.exception))
        with self.assertRaises(ConfigError) as caught:
            Settings.from_options([], {}, databases=[("analytics", [("keep-server", "true")])])
        self.assertIn("applies to the whole run", str(caught.exception))
        for name in ("Analytics", "2nd", "a-b", ""):
            with self.subTest(name=name), self.assertRaises(ConfigError):
                Settings.from_options([], {}, databases=[(name, [])])

    def test_a_database_section_without_sqltx(self):
        with self.assertRaises(ConfigError) as caught:
            check_sections(["unittest", "sqltx:analytics"])
        self.assertIn("section [sqltx:analytics]: is set, and there is no [sqltx] section", str(caught.exception))
        check_sections(["unittest", "sqltx", "sqltx:analytics"])  # both: fine

    def test_pyproject_tables_inside_tool_sqltx(self):
        import tempfile
        from pathlib import Path

        from nose2_sqltx.config_files import find_section

        with tempfile.TemporaryDirectory() as tmp:
            Path(tmp, "pyproject.toml").write_text('[tool.sqltx]\nmetadata = ["app:Base"]\n\n'
                                                   '[tool.sqltx.analytics]\nmetadata = "app:Other"\n'
                                                   'reset-sequences = true\n')
            section = find_section(tmp)
        self.assertEqual(section.options, (("metadata", "app:Base"),))
        self.assertEqual(section.databases, (("analytics", (("metadata", "app:Other"),
                                                            ("reset-sequences", "true"))),))


class TestMask(unittest.TestCase):
    def test_masks(self):
        cases = {
            "postgresql://u:pw@h:5/db": "postgresql://u:***@h:5/db",
            "postgresql://u@h/db": "postgresql://u@h/db",
            "postgresql://u:p@ss@h/db": "postgresql://u:***@h/db",
            "user:pw@:::broken": "user:***@:::broken",
            "postgresql://u:p%40ss@h/db": "postgresql://u:***@h/db",
        }
        for raw, masked in cases.items():
            with self.subTest(raw=raw):
                self.assertEqual(mask_url(raw), masked)
