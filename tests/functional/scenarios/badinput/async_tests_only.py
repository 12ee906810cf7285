"""An AsyncDatabaseTest, named on the command line (discovery skips this module)."""

import unittest

from nose2_sqltx import AsyncDatabaseTest


class TestAsyncNever(AsyncDatabaseTest, unittest.IsolatedAsyncioTestCase):
    async def test_nothing(self):
        pass


class TestWrongBase(AsyncDatabaseTest, unittest.TestCase):
    async def test_never_awaited(self):
        raise AssertionError("a plain TestCase would never run this coroutine")
