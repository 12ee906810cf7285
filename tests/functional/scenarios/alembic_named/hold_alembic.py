"""One test that holds the run open, its migrations applied, until the
process is killed; the marker file says it is inside the test."""

import os
import pathlib
import time
import unittest

from nose2_sqltx import DatabaseTest


class TestHeld(DatabaseTest, unittest.TestCase):
    def test_held(self):
        pathlib.Path(os.environ["SQLTX_MARKER"]).write_text("ready")
        time.sleep(60)
