"""Threads that use the test's engine at once: every committed row is kept,
as in production (the functional test runs the same tasks with real commits)."""

import unittest
from concurrent.futures import ThreadPoolExecutor

from scenario_models import Item, items
from sqlalchemy import func, select
from sqlalchemy.orm import sessionmaker

from nose2_sqltx import DatabaseTest

TASKS = 40


def task(Session, i):
    with Session() as session:
        session.add(Item(name=f"task-{i:02d}"))
        session.commit()
        return session.scalar(select(func.count()).select_from(Item))


class TestThreads(DatabaseTest, unittest.TestCase):
    def test_1_a_pool_of_threads_commits_every_row(self):
        Session = sessionmaker(self.engine)
        with ThreadPoolExecutor(4) as pool:
            counts = list(pool.map(lambda i: task(Session, i), range(TASKS)))
        self.assertEqual(items(self.connection), [f"task-{i:02d}" for i in range(TASKS)])
        self.assertTrue(all(1 <= count <= TASKS for count in counts), counts)

    def test_2_and_none_is_left_after_the_test(self):
        self.assertEqual(items(self.connection), [])
