"""One test that holds the run open, with rows in the named schemas' tables,
until the process is killed; the marker file says it is inside the test."""

import os
import pathlib
import time
import unittest

from named_models import Ledger, open_ledger
from sqlalchemy import select

from nose2_sqltx import DatabaseTest


class TestHeld(DatabaseTest, unittest.TestCase):
    def test_held(self):
        open_ledger("held", 1)
        self.assertEqual(self.session.scalars(select(Ledger.owner)).all(), ["held"])
        pathlib.Path(os.environ["SQLTX_MARKER"]).write_text("ready")
        time.sleep(60)
