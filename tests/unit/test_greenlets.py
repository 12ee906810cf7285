"""Worker greenlets (nose2_sqltx.greenlets), without a database: call after
call in one greenlet, each in its own context, an error handed back, one
idle list per thread, Turns telling one call of a worker from the next, an
idle bridge of the run's loop that keeps no run loop alive, and a call with
no owner from a test's task that needs no bridge."""

import asyncio
import contextvars
import gc
import threading
import unittest
import weakref

from greenlet import getcurrent
from sqlalchemy.util import await_only

from nose2_sqltx.greenlets import Done, give_back, job, take, worker_class
from nose2_sqltx.runloop import RunLoop, Turns

Worker = worker_class("Worker", "a worker for these tests")
var = contextvars.ContextVar("var", default="unset")


def run(fn, *args, context=None):
    """``fn(*args)`` in a worker (driven to its end, each switch answered with
    what was handed up, doubled), and the worker."""
    worker = take(Worker, getcurrent(), context or contextvars.copy_context())
    message = worker.switch(job(fn, *args))
    while not isinstance(message, Done):
        message = worker.switch(message * 2)
    give_back(worker)
    return message, worker


def asks(n):
    """Hands ``n`` up to the parent, and returns what comes back."""
    return getcurrent().parent.switch(n)


class TestWorkers(unittest.TestCase):
    def test_calls_run_one_after_another_in_one_greenlet(self):
        first, worker = run(lambda: (asks(2), asks(5)))
        self.assertEqual(first.result(), (4, 10))
        calls = worker.sqltx_call
        second, again = run(lambda: (getcurrent(), getcurrent().sqltx_call))
        self.assertIs(again, worker)
        self.assertEqual(second.result(), (worker, calls))
        self.assertFalse(worker.dead)
        self.assertEqual(worker.sqltx_call, calls + 1)  # changed as the call ended

    def test_what_a_call_raises_is_raised_by_its_result_and_the_worker_goes_on(self):
        def fails():
            asks(1)
            raise ValueError("the call's own")

        done, worker = run(fails)
        self.assertFalse(done.ok)
        with self.assertRaisesRegex(ValueError, "the call's own"):
            done.result()
        done, again = run(lambda: 7)
        self.assertIs(again, worker)
        self.assertEqual(done.result(), 7)

    def test_an_error_thrown_in_reaches_the_call(self):
        def catches():
            try:
                asks(1)
            except KeyError as exc:
                return f"caught {exc}"

        worker = take(Worker, getcurrent(), contextvars.copy_context())
        self.assertEqual(worker.switch(job(catches)), 1)
        done = worker.throw(KeyError("thrown"))
        give_back(worker)
        self.assertEqual(done.result(), "caught 'thrown'")

    def test_each_call_runs_in_the_context_it_is_given(self):
        first, second = contextvars.copy_context(), contextvars.copy_context()
        first.run(var.set, "first")
        second.run(var.set, "second")
        done, worker = run(var.get, context=first)
        self.assertEqual(done.result(), "first")
        done, again = run(lambda: (var.get(), var.set("changed"))[0], context=second)
        self.assertIs(again, worker)
        self.assertEqual(done.result(), "second")
        self.assertEqual(second[var], "changed")
        self.assertEqual(first[var], "first")
        self.assertEqual(var.get(), "unset")

    def test_each_thread_has_its_own_idle_workers(self):
        _, here = run(lambda: None)
        there = []
        thread = threading.Thread(target=lambda: there.append(run(lambda: None)[1]))
        thread.start()
        thread.join(5)
        self.assertEqual(len(there), 1)
        self.assertIsNot(there[0], here)
        self.assertIs(run(lambda: None)[1], here)

    def test_a_worker_is_taken_again_only_once_given_back(self):
        busy = take(Worker, getcurrent(), contextvars.copy_context())
        self.assertEqual(busy.switch(job(asks, 3)), 3)  # in the middle of its call
        _, other = run(lambda: None)
        self.assertIsNot(other, busy)
        self.assertEqual(busy.switch(0).result(), 0)


class TestBridges(unittest.TestCase):
    def test_an_idle_bridge_keeps_no_run_loop_alive(self):
        async def one():
            await asyncio.sleep(0)
            return 1

        loop = RunLoop()
        self.assertEqual(loop.call(lambda: await_only(one())), 1)  # through a bridge, now idle in this thread
        loop.close()
        ref = weakref.ref(loop)
        del loop
        gc.collect()
        self.assertIsNone(ref())

    def test_a_call_for_no_owner_from_a_tests_task_runs_in_the_tasks_own_greenlet(self):
        from nose2_sqltx.runloop import in_bridge
        from nose2_sqltx.testloop import run_test

        async def one():
            await asyncio.sleep(0)
            return 1

        def where():
            current = getcurrent()
            return bool(getattr(current, "sqltx_gate", False)), in_bridge(), await_only(one())

        with RunLoop() as loop:
            # from the task's greenlet: no bridge, its awaits still reach the loop
            self.assertEqual(run_test(loop, lambda: loop.call(where)), (True, False, 1))
            # from another thread: through a bridge, as before
            self.assertEqual(loop.call(where), (False, True, 1))

    def test_only_the_loops_own_thread_is_in_it_and_none_once_it_has_ended(self):
        loop = RunLoop()
        self.assertFalse(loop.in_loop_thread())
        self.assertTrue(loop.on_loop(loop.in_loop_thread))
        loop.close()
        seen = []
        thread = threading.Thread(target=lambda: seen.append(loop.in_loop_thread()))
        thread.start()
        thread.join(5)
        self.assertEqual(seen, [False])
        self.assertFalse(loop.in_loop_thread())


class TestTurnsAndWorkers(unittest.TestCase):
    def test_a_turn_left_taken_by_a_call_is_free_once_that_call_has_ended(self):
        turns = Turns()
        # A call that takes a turn and ends without giving it back (a task
        # cancelled in the middle of a statement, whose events never came).
        done, _ = run(turns.acquire)
        done.result()
        got = threading.Event()

        def other_thread():
            turns.acquire()
            got.set()
            turns.release()

        thread = threading.Thread(target=other_thread, daemon=True)  # (never left waiting at exit)
        thread.start()
        thread.join(5)
        self.assertTrue(got.is_set(), "another thread still waits for a turn of an ended call")

    def test_a_call_in_the_middle_of_its_turn_keeps_it(self):
        turns = Turns()
        worker = take(Worker, getcurrent(), contextvars.copy_context())

        def holds():
            turns.acquire()
            turns.acquire()  # reentrant, within the call
            asks(1)
            turns.release()
            turns.release()

        self.assertEqual(worker.switch(job(holds)), 1)
        got = threading.Event()
        thread = threading.Thread(target=lambda: (turns.acquire(), got.set(), turns.release()), daemon=True)
        thread.start()
        self.assertFalse(got.wait(0.3), "another thread took the turn of a call that holds it")
        worker.switch(None).result()
        give_back(worker)
        thread.join(5)
        self.assertTrue(got.is_set())


if __name__ == "__main__":
    unittest.main()
