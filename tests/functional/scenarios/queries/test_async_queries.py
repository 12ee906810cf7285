"""The query assertions in an AsyncDatabaseTest (run with an async driver)."""

import unittest

from shelf import Author, Book, page_async_per_author
from sqlalchemy import select

from nose2_sqltx import AsyncDatabaseTest


class TestAsyncQueryAssertions(AsyncDatabaseTest, unittest.IsolatedAsyncioTestCase):
    async def asyncSetUp(self):
        for i in range(3):
            self.session.add(Author(name=f"author {i}", books=[Book(title=f"book {i}")]))
        await self.session.flush()

    async def test_max_and_count_with_a_table(self):
        async with self.assertMaxQueries(4), self.assertNumQueries(3, table="book"):
            await page_async_per_author(self.session)
        authors = (await self.assertMaxQueries(1, self.session.scalars, select(Author))).all()
        self.assertEqual(len(authors), 3)

    async def test_fails_async_page_repeats_a_statement(self):
        async with self.assertNoRepeatedQueries():
            await page_async_per_author(self.session)
