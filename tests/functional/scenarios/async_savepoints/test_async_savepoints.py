"""The app's own savepoints, commits and rollbacks, in random sequences, on
an AsyncSession and an AsyncConnection of the app's async engine; what each
test saw goes to $ORACLE_OUT (one JSON line per test), for the functional
test to compare with the oracle (the same on an ordinary async engine)."""

import json
import os
import unittest

from models import engine, rows
from savepoint_ops import START, play, sequence
from sqlalchemy import insert
from sqlalchemy.ext.asyncio import AsyncSession

from nose2_sqltx import AsyncDatabaseTest

SEQUENCES = int(os.environ.get("ORACLE_SEQUENCES", "30"))


class TestAsyncAppSavepoints(AsyncDatabaseTest, unittest.IsolatedAsyncioTestCase):
    @classmethod
    async def asyncSetUpTestData(cls):
        async with AsyncSession(engine) as session:
            await session.execute(insert(rows).values(name=START))
            await session.commit()

    def record(self, path, seed, seen):
        with open(os.environ["ORACLE_OUT"], "a") as out:
            out.write(json.dumps({"path": path, "seed": seed, "seen": seen}) + "\n")


def _test(path, seed):
    async def test(self):
        steps = sequence(seed)
        if path == "session":
            async with AsyncSession(engine) as handle:
                seen = await handle.run_sync(play, rows, steps)
        else:
            async with engine.connect() as handle:
                seen = await handle.run_sync(play, rows, steps)
        self.record(path, seed, seen)

    return test


for _seed in range(SEQUENCES):
    for _path in ("session", "connection"):
        setattr(TestAsyncAppSavepoints, f"test_{_path}_{_seed:03}", _test(_path, _seed))
