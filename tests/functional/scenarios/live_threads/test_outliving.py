"""A thread that outlives its test: the test that starts it ends before the
thread writes (it waits for the next test to begin), so its write would land
in the next test's transaction. It is refused, and the next test sees none
of it. The tests run in name order."""

import threading
import unittest

from scenario_models import items
from thread_app import add_item

from nose2_sqltx import DatabaseTest

next_test_began = threading.Event()
written = threading.Event()
outcome = {}


def late_writer():
    next_test_began.wait(10)
    try:
        add_item("from the thread of test 1")
        outcome["error"] = None
    except Exception as exc:  # test 3 reads it
        outcome["error"] = exc
    written.set()


class TestOutliving(DatabaseTest, unittest.TestCase):
    def test_1_starts_a_thread_and_ends(self):
        threading.Thread(target=late_writer, name="late writer").start()

    def test_2_sees_nothing_of_it(self):
        next_test_began.set()
        self.assertTrue(written.wait(10))
        self.assertEqual(items(self.connection), [])
        add_item("test 2's own")
        self.assertEqual(items(self.connection), ["test 2's own"])

    def test_3_the_thread_was_refused(self):
        error = outcome["error"]
        self.assertEqual(type(error).__name__, "ThreadOutlivedTestError")
        self.assertIn("thread 'late writer', started during test_outliving.TestOutliving.test_1_starts_a_thread_and_"
                      "ends, used the database after that test ended", str(error))

    def test_4_a_thread_joined_in_its_test_is_fine(self):
        thread = threading.Thread(target=add_item, args=("joined",))
        thread.start()
        thread.join()
        self.assertEqual(items(self.connection), ["joined"])
