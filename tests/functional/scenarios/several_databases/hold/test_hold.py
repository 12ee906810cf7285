"""One test that writes to both databases, then waits in a long statement on
the second, until the process gets a signal; the marker file says it is inside."""

import os
import pathlib
import unittest

from shop import Customer, Event
from sqlalchemy import text

from nose2_sqltx import DatabaseTest


class TestHeld(DatabaseTest, unittest.TestCase):
    def test_held(self):
        self.session.add(Customer(id=1, name="held"))
        self.session.commit()
        analytics = self.databases["analytics"]
        analytics.session.add(Event(kind="held"))
        analytics.session.commit()
        pathlib.Path(os.environ["SQLTX_MARKER"]).write_text("ready")
        analytics.connection.execute(text("SELECT pg_sleep(60)"))
