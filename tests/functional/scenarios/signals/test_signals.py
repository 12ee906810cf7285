import os
import pathlib
import time
import unittest

from scenario_models import Item

from nose2_sqltx import DatabaseTest


class TestSlow(DatabaseTest, unittest.TestCase):
    def test_waits(self):
        self.session.add(Item(name="before the signal"))
        self.session.commit()
        pathlib.Path(os.environ["SQLTX_MARKER"]).write_text("ready")
        time.sleep(60)
