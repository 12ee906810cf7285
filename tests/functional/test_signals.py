"""Ctrl-C and SIGTERM in the middle of a run: the process ends, nothing is left."""

import signal

from tests.support import FunctionalTest, slow_run, snapshot


class TestSignals(FunctionalTest):
    def interrupt(self, sig):
        with slow_run() as proc:
            self.assertEqual(snapshot().sessions, 1, "the run's connection is not open")
            proc.send_signal(sig)
            _, err = proc.communicate(timeout=30)
        self.assertNotEqual(proc.returncode, 0, err)
        if sig == signal.SIGTERM:
            self.assertEqual(proc.returncode, -signal.SIGTERM, "did not die by SIGTERM")
        self.assertNotIn("nose2-sqltx: error", err)
        self.assertDatabaseUnchanged()
        return err

    def test_ctrl_c(self):
        err = self.interrupt(signal.SIGINT)
        self.assertIn("KeyboardInterrupt", err)

    def test_sigterm(self):
        err = self.interrupt(signal.SIGTERM)
        self.assertIn("nose2-sqltx: stopped by SIGTERM; the run's transaction was rolled back", err)
