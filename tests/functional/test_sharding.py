"""A suite split across machines: the shards, each run on its own, make up
exactly the suite (no test twice, none missing), under nose2, nose2 -N,
pytest and pytest -n; the CI's variables pick the shard; the durations file
is written and read; bad input is one line."""

import json
import re
import tempfile
from pathlib import Path

import yaml

from tests.support import ROOT, SCENARIOS, FunctionalTest, run_nose2

#: nose2 -v: "test_x (module.Class.test_x) ... ok" (nose2 -N prints the name twice)
NOSE2_OUTCOME = re.compile(r"\(([\w.]+)\) \.\.\. (ok|FAIL|ERROR)$", re.M)
#: pytest -v: "test_alpha.py::TestAlphaone::test_01 PASSED" (with -n: "[gw0] [ 1%] PASSED test_alpha.py::...")
PYTEST_OUTCOME = re.compile(
    r"^(?:(\S+::\S+) (PASSED|FAILED|ERROR)|\[gw\d+\] \[...%\] (PASSED|FAILED|ERROR) (\S+::\S+))", re.M)
SUITE = 252  # tests of the parallel scenario: 6 classes in 3 modules


def nose2_outcomes(run):
    return dict(NOSE2_OUTCOME.findall(run.stderr))


def pytest_outcomes(run):
    found = {}
    for nodeid, outcome, outcome_n, nodeid_n in PYTEST_OUTCOME.findall(run.stdout):
        found[nodeid or nodeid_n] = outcome or outcome_n
    return found


class TestShards(FunctionalTest):
    def assertShardsMakeUpTheSuite(self, whole, parts, size=SUITE):
        self.assertEqual(len(whole), size)
        seen = [test for part in parts for test in part]
        self.assertEqual(len(seen), len(set(seen)), "a test ran in two shards")
        merged = {test: outcome for part in parts for test, outcome in part.items()}
        self.assertEqual(merged, whole)
        self.assertTrue(all(parts), "a shard ran nothing")

    def test_nose2_shards_and_workers_inside_a_shard(self):
        whole = nose2_outcomes(self.run_scenario("parallel", expect=1, timeout=300))
        parts = []
        for i in (1, 2, 3):
            run = run_nose2("parallel", "--sqltx-shard", f"{i}/3")
            self.assertIn(run.returncode, (0, 1), run.output)
            self.assertIn(f"nose2-sqltx: shard {i}/3 (from --sqltx-shard): 2 of 6 test classes", run.stderr)
            parts.append(nose2_outcomes(run))
        self.assertShardsMakeUpTheSuite(whole, parts)
        # -N 2 inside shard 2 of 3: the same tests, the same outcomes
        workers = run_nose2("parallel", "--sqltx-shard", "2/3", "-N", "2")
        self.assertEqual(nose2_outcomes(workers), parts[1])
        self.assertDatabaseUnchanged()

    def test_pytest_shards_and_xdist_inside_a_shard(self):
        # (pytest also collects the scenario's module-level alias of each class: 9 classes, 378 tests)
        whole = pytest_outcomes(self.run_scenario("parallel", runner="pytest", expect=1, timeout=300))
        parts = []
        for i in (1, 2):
            run = run_nose2("parallel", "--sqltx-shard", f"{i}/2", runner="pytest")
            self.assertIn(run.returncode, (0, 1), run.output)
            line = re.search(rf"nose2-sqltx: shard {i}/2 \(from --sqltx-shard\): \d+ of 9 test classes, "
                             r"(\d+) of 378 tests", run.stdout)
            self.assertIsNotNone(line, run.stdout[:2000])
            self.assertRegex(run.stdout, rf"\b{378 - int(line.group(1))} deselected\b")
            parts.append(pytest_outcomes(run))
        self.assertShardsMakeUpTheSuite(whole, parts, size=378)
        workers = run_nose2("parallel", "--sqltx-shard", "1/2", runner="pytest -n 2")
        self.assertIn("nose2-sqltx: shard 1/2 (from --sqltx-shard): each worker picks the same part", workers.stdout)
        self.assertEqual(pytest_outcomes(workers), parts[0])
        self.assertDatabaseUnchanged()

    def test_the_ci_variables_pick_the_shard_unless_told_off(self):
        run = run_nose2("parallel", env={"CI_NODE_INDEX": "2", "CI_NODE_TOTAL": "2"})
        self.assertIn("nose2-sqltx: shard 2/2 (from CI_NODE_INDEX/CI_NODE_TOTAL (GitLab CI)): 3 of 6 test classes, "
                      "126 of 252 tests", run.stderr)
        run = run_nose2("parallel", env={"CIRCLE_NODE_INDEX": "0", "CIRCLE_NODE_TOTAL": "3"})
        self.assertIn("shard 1/3 (from CIRCLE_NODE_INDEX/CIRCLE_NODE_TOTAL (CircleCI))", run.stderr)
        # SQLTX_SHARD wins over the CI's variables; off runs the whole suite
        run = run_nose2("parallel", env={"CI_NODE_INDEX": "2", "CI_NODE_TOTAL": "2", "SQLTX_SHARD": "1/3"})
        self.assertIn("shard 1/3 (from SQLTX_SHARD)", run.stderr)
        run = run_nose2("parallel", env={"CI_NODE_INDEX": "2", "CI_NODE_TOTAL": "2", "SQLTX_SHARD": "off"})
        self.assertNotIn("shard", run.stderr)
        self.assertEqual(len(nose2_outcomes(run)), SUITE)
        self.assertDatabaseUnchanged()

    def test_python_m_unittest_says_it_runs_everything(self):
        run = run_nose2("semantics", runner="unittest", env={"SQLTX_SHARD": "1/2"})
        self.assertEqual(run.returncode, 0, run.output)
        self.assertIn("nose2-sqltx: warning: shard 1/2 (from SQLTX_SHARD) is not taken: "
                      "python -m unittest has no hook to choose the tests it runs", run.stderr)

    def test_bad_shards_are_one_line(self):
        cases = [
            (("--sqltx-shard", "3/2"), {}, "command-line option --sqltx-shard = 3/2: there is no shard 3 of 2"),
            (("--sqltx-shard", "0/0"), {}, "--sqltx-shard = 0/0: splits the suite into no shards"),
            ((), {"SQLTX_SHARD": "half"}, "environment variable SQLTX_SHARD = half: is not a shard. Write I/N"),
            ((), {"CIRCLE_NODE_INDEX": "x", "CIRCLE_NODE_TOTAL": "2"},
             "CIRCLE_NODE_INDEX/CIRCLE_NODE_TOTAL (CircleCI) = x/2: is not a job index and count"),
        ]
        for runner, status in (("nose2", 2), ("pytest", 4)):
            for args, env, message in cases:
                with self.subTest(runner=runner, args=args, env=env):
                    run = run_nose2("parallel", *args, env=env, runner=runner)
                    self.assertEqual(run.returncode, status, run.output)
                    lines = [line for line in run.output.strip().splitlines() if line.strip()]
                    self.assertEqual(len(lines), 1, run.output)
                    self.assertIn(message, lines[0])
        self.assertDatabaseUnchanged()


class TestDurationsFile(FunctionalTest):
    def run_with_durations(self, path, *args):
        with tempfile.TemporaryDirectory() as tmp:
            config = Path(tmp) / "durations.cfg"
            config.write_text((SCENARIOS / "parallel" / "unittest.cfg").read_text() + f"durations = {path}\n")
            return run_nose2("parallel", "-c", str(config), *args)

    def test_written_after_the_run_and_read_by_the_next(self):
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "durations.json"
            first = self.run_with_durations(path)
            self.assertEqual(first.returncode, 1, first.output)  # the scenario fails some tests on purpose
            units = json.loads(path.read_text())["units"]
            self.assertEqual(sorted(units), [f"test_{m}.Test{m.capitalize()}{n}" for m in ("alpha", "beta", "gamma")
                                             for n in ("one", "two")])
            self.assertEqual({u["tests"] for u in units.values()}, {42})
            self.assertTrue(all(u["seconds"] > 0 for u in units.values()))
            shard = self.run_with_durations(path, "--sqltx-shard", "2/2")
            self.assertNotIn("warning", shard.stderr)
            self.assertIn("shard 2/2 (from --sqltx-shard): 3 of 6 test classes", shard.stderr)
            # the shard's times go into the file; the other shard's stay
            self.assertEqual(sorted(json.loads(path.read_text())["units"]), sorted(units))
            self.assertEqual(sorted(p.name for p in Path(tmp).iterdir()), ["durations.json"])
        self.assertDatabaseUnchanged()

    def test_a_corrupt_or_foreign_file_is_a_warning_and_the_split_by_test_counts(self):
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "durations.json"
            for text, problem in (("{oops", "cannot be read (JSONDecodeError"),
                                  ('{"format": "nose2-sqltx durations 1", "units": {"other.Suite": '
                                   '{"seconds": 3, "tests": 1}}}', "knows none of this suite's test classes")):
                path.write_text(text)
                run = self.run_with_durations(path, "--sqltx-shard", "1/2")
                self.assertEqual(run.returncode, 1, run.output)
                self.assertIn(f"nose2-sqltx: warning: durations file {path} {problem}", run.stderr)
                self.assertIn(": split by test counts", run.stderr)
                self.assertEqual(len(nose2_outcomes(run)), SUITE // 2)
        self.assertDatabaseUnchanged()


class TestCIExamples(FunctionalTest):
    """examples/ci: each file parses, and the jobs it starts, each with the
    variables its CI system gives it, run shards that make up the suite."""

    def load(self, name):
        return yaml.safe_load((ROOT / "examples" / "ci" / name).read_text())

    def assertJobsMakeUpTheSuite(self, runner, jobs_env):
        whole = run_nose2("parallel", runner=runner)
        outcomes = pytest_outcomes if runner == "pytest" else nose2_outcomes
        parts = []
        for env in jobs_env:
            run = run_nose2("parallel", runner=runner, env=env)
            self.assertIn(run.returncode, (0, 1), run.output)
            parts.append(outcomes(run))
        self.assertShardsMakeUpTheSuite(outcomes(whole), parts, size=len(outcomes(whole)))
        self.assertDatabaseUnchanged()

    assertShardsMakeUpTheSuite = TestShards.assertShardsMakeUpTheSuite

    def test_github_actions_matrix(self):
        job = self.load("github-actions.yml")["jobs"]["test"]
        shards = job["strategy"]["matrix"]["shard"]
        self.assertEqual(shards, [1, 2, 3, 4])
        template = job["env"]["SQLTX_SHARD"]
        self.assertEqual(template, "${{ matrix.shard }}/4")
        self.assertIn("postgres", job["services"])
        self.assertIn({"run": "nose2 -v"}, job["steps"])
        self.assertJobsMakeUpTheSuite("nose2", [{"SQLTX_SHARD": template.replace("${{ matrix.shard }}", str(s))}
                                                for s in shards])

    def test_gitlab_parallel(self):
        job = self.load("gitlab-ci.yml")["tests"]
        self.assertIn("nose2 -v", job["script"])
        total = job["parallel"]
        self.assertJobsMakeUpTheSuite("nose2", [{"CI_NODE_INDEX": str(i), "CI_NODE_TOTAL": str(total)}
                                                for i in range(1, total + 1)])

    def test_circleci_parallelism(self):
        job = self.load("circleci-config.yml")["jobs"]["test"]
        self.assertIn({"run": "pytest -v"}, job["steps"])
        total = job["parallelism"]
        self.assertJobsMakeUpTheSuite("pytest", [{"CIRCLE_NODE_INDEX": str(i), "CIRCLE_NODE_TOTAL": str(total)}
                                                 for i in range(total)])
