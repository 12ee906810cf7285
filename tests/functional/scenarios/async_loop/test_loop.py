"""Where an AsyncDatabaseTest's coroutines run (async-test-loop), and what
IsolatedAsyncioTestCase promises that must hold there: one context for a
test's phases, debug mode, tasks and async generators a test leaves
behind ended with it, sync code in the test's tasks reaching the database,
and the run's database and the next tests unharmed by a test that blocks
its loop.

Tests 5 and 6 block the loop in sync code while a thread of the app waits
for the database (a thread joined; Starlette's TestClient): on a loop of
their own (async-test-loop = own, LOOP_MODE=own) they pass; on the run's
loop each fails with LoopBlockedError after lock-timeout, not a hang (the
functional test checks which)."""

import asyncio
import contextvars
import os
import threading
import unittest

import loop_app
from scenario_models import Item
from sqlalchemy import func, select

from nose2_sqltx import AsyncDatabaseTest

MODE = os.environ.get("LOOP_MODE", "run")
phase = contextvars.ContextVar("phase", default=None)
#: what one test left for the next to check
left_behind = []
loops = []  # the loops themselves: kept, so that no two share an id


class TestTheTestsLoop(AsyncDatabaseTest, unittest.IsolatedAsyncioTestCase):
    def setUp(self):
        phase.set("setUp")

    async def asyncSetUp(self):
        self.seen_in_async_set_up = phase.get()
        phase.set("asyncSetUp")
        loops.append(asyncio.get_running_loop())

    async def test_1_one_context_for_the_phases_and_debug_mode(self):
        self.assertEqual(self.seen_in_async_set_up, "setUp")
        self.assertEqual(phase.get(), "asyncSetUp")
        self.assertTrue(asyncio.get_running_loop().get_debug())

    async def test_2_leaves_a_task_and_a_generator_running(self):
        async def forever():
            try:
                await asyncio.sleep(3600)
            except asyncio.CancelledError:
                left_behind.append("task cancelled")
                raise

        async def numbers():
            try:
                yield 1
                yield 2
            finally:
                left_behind.append("generator closed")

        asyncio.get_running_loop().create_task(forever())
        await asyncio.sleep(0)
        generator = numbers()
        self.assertEqual(await generator.__anext__(), 1)
        self.generator = generator  # kept alive: only the end of the test closes it

    async def test_3_they_were_ended_with_that_test(self):
        self.assertEqual(sorted(left_behind), ["generator closed", "task cancelled"])

    async def test_4_sync_code_in_a_task_of_the_test(self):
        self.session.add(Item(name="mine"))
        await self.session.commit()

        async def handler():
            return loop_app.count_items_cli()  # sync code, called from a coroutine of a task the test made

        self.assertEqual(await asyncio.create_task(handler()), 1)

    async def test_5_another_thread_waits_while_the_test_blocks_the_loop(self):
        seen = []

        def cli_in_a_thread():
            try:
                seen.append(loop_app.count_items_cli())
            except Exception as exc:  # the thread's error, checked below
                seen.append(exc)

        thread = threading.Thread(target=cli_in_a_thread)
        thread.start()
        thread.join()  # blocks the test's loop in sync code
        print(f"THREAD SAW: {type(seen[0]).__name__}: {seen[0]}")
        self.assertEqual(seen, [0])  # the CLI's count, as in production

    async def test_6_starlettes_test_client_inside_an_async_test(self):
        from fastapi.testclient import TestClient

        with TestClient(loop_app.api) as client:
            self.assertEqual(client.get("/items/count").json(), {"count": 0})

    async def test_7_the_loop_is_the_runs_or_the_tests_own(self):
        self.assertEqual(len({id(loop) for loop in loops}), 1 if MODE == "run" else 7)
        self.assertEqual(await self.session.scalar(select(func.count()).select_from(Item)), 0)
