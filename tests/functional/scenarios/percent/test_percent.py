import unittest

from scenario_models import items

from nose2_sqltx import DatabaseTest


class TestPercent(DatabaseTest, unittest.TestCase):
    def test_connected(self):
        self.assertEqual(items(self.connection), [])
        self.assertEqual(self.engine.url.password, "p@ssw0rd")
        # No application_name in the URL: the plugin names itself to the server.
        self.assertEqual(self.connection.exec_driver_sql("SHOW application_name").scalar(), "nose2-sqltx")
