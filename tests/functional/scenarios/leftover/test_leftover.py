import os
import unittest

from sqlalchemy import create_engine, text

from nose2_sqltx import DatabaseTest, unwatched


class TestLeftover(DatabaseTest, unittest.TestCase):
    def test_commits_a_table_outside(self):
        # A deliberate second connection whose work nobody undoes.
        engine = unwatched(create_engine(os.environ["SQLTX_DSN"]))
        self.addCleanup(engine.dispose)
        with engine.begin() as conn:
            conn.execute(text("CREATE TABLE sqltx_leftover (a int)"))
