"""A test blocked on a lock or a slow statement fails with a message; no hang;
nor does another connection that waits for the test transaction's locks."""

import json
import tempfile
from pathlib import Path

from tests.support import SERVER_TARGETS, FunctionalTest, each_target

# What each server says, and what the plugin adds, for the scenario's two tests.
EXPECTED = {
    "postgresql": ("canceling statement due to lock timeout", "waited longer than lock-timeout (300 ms)",
                   "canceling statement due to statement timeout"),
    "mysql": ("(1205, 'Lock wait timeout exceeded",
              "waited longer than lock-timeout (300 ms, rounded up to whole seconds)",
              "(1969, 'Query execution was interrupted (max_statement_time exceeded)')"),
}


class TestTimeouts(FunctionalTest):
    @each_target(*SERVER_TARGETS)
    def test_lock_and_statement_timeouts_explained(self, target):
        run = self.run_scenario("timeouts", target=target, expect=1, timeout=60)
        for text in EXPECTED[target.split("+")[0]]:
            self.assertIn(text, run.stderr)
        # the 5 s sleep was cancelled by the 2 s statement timeout
        self.assertIn("ran longer than statement-timeout (2000 ms)", run.stderr)
        self.assertRegex(run.stderr, r"test_still_usable .* ok")
        self.assertIn("FAILED (errors=2)", run.stderr)


class TestOtherConnections(FunctionalTest):
    """Connections outside the test transaction never wait for its locks
    longer than lock-timeout (1 s in the scenario)."""

    @each_target("postgresql+psycopg2", "postgresql+psycopg", "mysql+pymysql", "mysql+mysqldb", "sqlite-file")
    def test_waits_on_the_runs_locks_end_within_lock_timeout(self, target):
        with tempfile.TemporaryDirectory() as tmp:
            out = Path(tmp) / "waits.jsonl"
            run = self.run_scenario("lockwait", target=target, env={"LOCKWAIT_OUT": str(out)}, timeout=120)
            seen = {r["name"]: r for r in map(json.loads, out.read_text().splitlines())}
        postgresql = target.startswith("postgresql")
        want = {"engine": "LockWaitError certain" if postgresql else "LockWaitError likely"}
        if postgresql:
            want.update({"thread": "LockWaitError certain", "psql": "ERROR:  canceling statement due to user request"})
        self.assertEqual({name: r["outcome"] for name, r in seen.items()}, want, run.stderr)
        for name, r in seen.items():
            # It did wait (a lock was held), and not past lock-timeout by more
            # than a connection's start (psql's own start, a process's, measured apart).
            self.assertGreater(r["seconds"], 0.5, name)
            self.assertLess(r["seconds"] - r["start"], 1.5, r)
