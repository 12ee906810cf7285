"""The app's own savepoints, commits and rollbacks, in random sequences, on
a Session and on a Connection; what each test saw goes to $ORACLE_OUT (one
JSON line per test), for the functional test to compare with the oracle.
They run on the app's engine, set up as the oracle's."""

import json
import os
import unittest

from models import engine, rows
from savepoint_ops import START, play, play_two, sequence, two_sequence
from sqlalchemy import insert
from sqlalchemy.orm import Session

from nose2_sqltx import DatabaseTest

SEQUENCES = int(os.environ.get("ORACLE_SEQUENCES", "30"))


class TestAppSavepoints(DatabaseTest, unittest.TestCase):
    @classmethod
    def setUpTestData(cls):
        with Session(cls.engine) as session:
            session.execute(insert(rows).values(name=START))
            session.commit()

    def record(self, path, seed, seen):
        with open(os.environ["ORACLE_OUT"], "a") as out:
            out.write(json.dumps({"path": path, "seed": seed, "seen": seen}) + "\n")


def _test(path, seed):
    def test(self):
        if path == "session":
            with Session(engine) as handle:
                seen = play(handle, rows, sequence(seed))
        else:
            with engine.connect() as handle:
                seen = play(handle, rows, sequence(seed))
        self.record(path, seed, seen)

    return test


def _two(path, seed):
    def test(self):
        with Session(engine) as a, Session(engine) as b:
            seen = play_two([a, b], rows, two_sequence(seed, turns=path == "turns"), shared=True)
        self.record(path, seed, seen)

    return test


for _seed in range(SEQUENCES):
    for _path in ("session", "connection"):
        setattr(TestAppSavepoints, f"test_{_path}_{_seed:03}", _test(_path, _seed))
    for _path in ("two", "turns"):
        setattr(TestAppSavepoints, f"test_{_path}_{_seed:03}", _two(_path, _seed))
