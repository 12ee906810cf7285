"""Ctrl-C and SIGTERM in the middle of a run: the process ends, nothing is left."""

import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from tests.support import PYTHONPATH, SCENARIOS, FunctionalTest, dsn, snapshot


class TestSignals(FunctionalTest):
    def interrupt(self, sig):
        with tempfile.TemporaryDirectory() as tmp:
            marker = Path(tmp) / "ready"
            env = {**os.environ, "PYTHONPATH": PYTHONPATH, "SQLTX_DSN": dsn(), "SQLTX_MARKER": str(marker)}
            proc = subprocess.Popen(
                [sys.executable, "-m", "nose2", "-v"], cwd=SCENARIOS / "signals", env=env,
                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            )
            try:
                deadline = time.monotonic() + 60
                while not marker.exists():
                    self.assertIsNone(proc.poll(), "nose2 ended before the test started")
                    self.assertLess(time.monotonic(), deadline, "the test never started")
                    time.sleep(0.05)
                self.assertEqual(snapshot().sessions, self.before.sessions + 1, "the run's connection is not open")
                proc.send_signal(sig)
                out, err = proc.communicate(timeout=30)
            finally:
                if proc.poll() is None:
                    proc.kill()
                    proc.wait()
        self.assertNotEqual(proc.returncode, 0, err)
        if sig == signal.SIGTERM:
            self.assertEqual(proc.returncode, -signal.SIGTERM, "did not die by SIGTERM")
        self.assertNotIn("nose2-sqltx: error", err)
        self.wait_for_sessions()
        self.assertDatabaseUnchanged()
        return err

    def wait_for_sessions(self):
        # The server ends the backend a moment after the client is gone.
        deadline = time.monotonic() + 10
        while snapshot().sessions > self.before.sessions and time.monotonic() < deadline:
            time.sleep(0.05)

    def test_ctrl_c(self):
        err = self.interrupt(signal.SIGINT)
        self.assertIn("KeyboardInterrupt", err)

    def test_sigterm(self):
        err = self.interrupt(signal.SIGTERM)
        self.assertIn("nose2-sqltx: stopped by SIGTERM; the run's transaction was rolled back", err)
