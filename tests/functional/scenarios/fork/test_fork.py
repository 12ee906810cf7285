"""A test that forks: the child must never stop the parent's server."""

import atexit
import os
import unittest

from scenario_models import references

from nose2_sqltx import DatabaseTest


class TestFork(DatabaseTest, unittest.TestCase):
    def test_1_fork_a_child_that_exits(self):
        pid = os.fork()
        if pid == 0:  # the child: leave as a normal interpreter exit would
            atexit._run_exitfuncs()
            os._exit(0)
        _, status = os.waitpid(pid, 0)
        self.assertEqual(status, 0)
        self.assertEqual(references(self.connection), 2)

    def test_2_server_still_there(self):
        self.assertEqual(references(self.connection), 2)
