"""The run's loop as a test's loop (nose2_sqltx.testloop), without a
database: sync code in a test's task waiting for coroutines on the loop
that runs it, IsolatedAsyncioTestCase's promises kept on a shared loop,
interrupts, and another thread's bounded wait while a test blocks the loop."""

import asyncio
import contextvars
import re
import sys
import threading
import time
import unittest

from sqlalchemy.util import await_only

from nose2_sqltx.errors import LoopBlockedError, LoopWaitError
from nose2_sqltx.runloop import RunLoop, run_coroutine
from nose2_sqltx.testloop import RunLoopRunner, run_test

var = contextvars.ContextVar("var", default="unset")


class LoopTest(unittest.TestCase):
    def setUp(self):
        self.loop = RunLoop()
        self.addCleanup(self.loop.close)


class TestRunTest(LoopTest):
    def test_sync_code_awaits_on_the_loop_that_runs_it(self):
        async def answer():
            await asyncio.sleep(0)
            return threading.current_thread().name

        def test():
            # no greenlet_spawn here: the portal's greenlet is what await_only accepts
            return threading.current_thread().name, await_only(answer())

        ran_in, awaited_in = run_test(self.loop, test)
        self.assertEqual(ran_in, "nose2-sqltx run loop")
        self.assertEqual(awaited_in, "nose2-sqltx run loop")

    def test_what_the_test_raises_is_raised_here_and_the_loop_goes_on(self):
        def fails():
            raise ValueError("the test's own")

        with self.assertRaisesRegex(ValueError, "the test's own"):
            run_test(self.loop, fails)

        def interrupted():
            raise KeyboardInterrupt

        with self.assertRaises(KeyboardInterrupt):
            run_test(self.loop, interrupted)
        self.assertTrue(self.loop.alive)
        self.assertEqual(run_test(self.loop, lambda: 42), 42)

    def test_a_class_set_up_made_again_inside_a_test_runs_right_there(self):
        async def made():
            return asyncio.get_running_loop()

        # (in a thread of its own it would wait for this loop, which waits for it)
        self.assertIs(run_test(self.loop, lambda: run_coroutine(made())), self.loop.loop)

    def test_sync_code_outside_the_tests_tasks_cannot_wait(self):
        async def never():
            return 1

        seen = []

        def callback():
            try:
                self.loop.run(never())
            except LoopWaitError as exc:
                seen.append(exc)

        run_test(self.loop, lambda: await_only(_soon(self.loop.loop, callback)))
        self.assertEqual(len(seen), 1)
        self.assertIn("outside the test's tasks", str(seen[0]))
        self.assertIn("async-test-loop = own", str(seen[0]))


async def _soon(loop, callback):
    done = loop.create_future()
    loop.call_soon(lambda: (callback(), done.set_result(None)))
    await done


class TestRunLoopRunner(LoopTest):
    def run_phases(self, *coroutines, context=None):
        """What IsolatedAsyncioTestCase does in a test: each phase through the runner, then close."""

        def test():
            runner = RunLoopRunner(self.loop)
            try:
                return [runner.run(c, context=context) for c in coroutines]
            finally:
                runner.close()

        return run_test(self.loop, test)

    def test_the_phases_share_the_tests_context_and_run_in_debug_mode(self):
        context = contextvars.copy_context()

        async def set_up():
            var.set("set up")
            return asyncio.get_running_loop().get_debug()

        async def test_method():
            # debug mode whole: the flag, and the origin of each coroutine the test makes
            return var.get(), asyncio.get_running_loop().get_debug(), sys.get_coroutine_origin_tracking_depth()

        self.assertEqual(self.run_phases(set_up(), test_method(), context=context),
                         [True, ("set up", True, asyncio.constants.DEBUG_STACK_DEPTH)])
        self.assertEqual(context[var], "set up")
        self.assertFalse(self.loop.loop.get_debug())  # between tests, as the loop of nobody's test
        self.assertEqual(run_test(self.loop, sys.get_coroutine_origin_tracking_depth), 0)
        self.assertEqual(var.get(), "unset")

    def test_debug_mode_covers_the_phases_own_steps_and_tasks_not_its_task(self):
        async def test_method():
            await asyncio.sleep(0)
            made = asyncio.get_running_loop().create_task(asyncio.sleep(0))
            await made
            # the test's own task records where it was made, as in debug
            # mode; the phase's task, made by the runner, does not (its
            # stack would be the runner's frames, at about 40 µs a record)
            return made._source_traceback is not None, asyncio.current_task()._source_traceback

        self.assertEqual(self.run_phases(test_method()), [(True, None)])

    def test_a_slow_first_step_of_a_phase_is_reported_as_in_debug_mode(self):
        self.loop.loop.slow_callback_duration = 0.05

        async def test_method():
            time.sleep(0.1)  # before the phase's first await: its first step

        with self.assertLogs("asyncio", "WARNING") as logged:
            self.run_phases(test_method())
        self.assertTrue(any(re.search(r"Executing .* took \d+\.\d+ seconds", line) for line in logged.output),
                        logged.output)

    def test_left_over_tasks_and_generators_end_with_the_test(self):
        ended = []

        async def forever():
            # (3 s, not for ever: a task left running that is not cancelled
            # fails this test instead of hanging it)
            try:
                await asyncio.sleep(3)
            except asyncio.CancelledError:
                ended.append("task")
                raise

        async def numbers():
            try:
                yield 1
                yield 2
            finally:
                ended.append("generator")

        kept = []

        async def test_method():
            asyncio.get_running_loop().create_task(forever())
            await asyncio.sleep(0)
            generator = numbers()
            kept.append(generator)
            return await generator.__anext__()

        self.assertEqual(self.run_phases(test_method()), [1])
        self.assertEqual(sorted(ended), ["generator", "task"])

    def test_a_task_of_the_test_may_call_sync_code_that_waits(self):
        async def value():
            await asyncio.sleep(0)
            return "awaited"

        def sync_helper():
            return await_only(value())

        async def in_a_task():
            return sync_helper()

        async def test_method():
            return await asyncio.create_task(in_a_task())

        self.assertEqual(self.run_phases(test_method()), ["awaited"])

    def test_keyboard_interrupt_and_system_exit_reach_the_tests_thread(self):
        async def interrupt():
            raise KeyboardInterrupt

        with self.assertRaises(KeyboardInterrupt):
            self.run_phases(interrupt())

        async def exits():
            raise SystemExit(3)

        with self.assertRaises(SystemExit):
            self.run_phases(exits())
        self.assertEqual(run_test(self.loop, lambda: "still serving"), "still serving")


class TestBlockedLoop(LoopTest):
    def test_another_threads_wait_gives_up_and_says_where_the_loop_is_blocked(self):
        self.loop.blocked_limit = 0.3
        seen = []

        async def statement():
            return "ran"

        def thread_body():
            for _ in range(2):
                started = time.monotonic()
                try:
                    seen.append(self.loop.run(statement()))
                except LoopBlockedError as exc:
                    seen.append((exc, time.monotonic() - started))

        thread = threading.Thread(target=thread_body)

        def blocking_test():
            thread.start()
            # sync code that blocks the loop; bounded, so that a wait that
            # never gives up fails this test instead of hanging it
            thread.join(5)

        run_test(self.loop, blocking_test)
        thread.join(5)
        self.assertEqual([type(value) for value in seen], [tuple, tuple], seen)
        (first, first_wait), (second, second_wait) = seen
        self.assertGreaterEqual(first_wait, 0.3)
        self.assertLess(first_wait, 2.0)
        self.assertIsInstance(second, LoopBlockedError)
        self.assertLess(second_wait, 0.2)  # the same blocked step: given up at once
        self.assertRegex(str(first), r"test_testloop\.py:\d+ in blocking_test")
        self.assertEqual(self.loop.blocked_errors, [first])
        # once the test no longer blocks the loop, another thread is served again
        self.assertEqual(self.loop.run(statement()), "ran")

    def test_a_short_block_is_waited_for(self):
        self.loop.blocked_limit = 1.0
        seen = []

        async def statement():
            return "ran"

        def blocking_test():
            thread = threading.Thread(target=lambda: seen.append(self.loop.run(statement())))
            thread.start()
            time.sleep(0.3)  # blocks the loop, less than the limit
            return "done"

        self.assertEqual(run_test(self.loop, blocking_test), "done")
        deadline = time.monotonic() + 5
        while not seen and time.monotonic() < deadline:
            time.sleep(0.01)
        self.assertEqual(seen, ["ran"])
        self.assertEqual(self.loop.blocked_errors, [])


if __name__ == "__main__":
    unittest.main()
