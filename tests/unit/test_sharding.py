"""The split of a suite into shards: parsing, the CI's variables, the
partition every shard computes on its own, and the durations file."""

import json
import random
import statistics
import tempfile
import unittest
from pathlib import Path

from nose2_sqltx.errors import ConfigError
from nose2_sqltx.sharding import (
    DURATIONS_FORMAT,
    Durations,
    Shard,
    ShardRun,
    choose,
    filter_suite,
    merge_durations,
    shard_from_ci,
    suite_ids,
    unit_of_id,
    unit_of_nodeid,
)


class TestShard(unittest.TestCase):
    def test_parse(self):
        self.assertEqual(Shard.parse(" 2 / 3 ", "x"), Shard(2, 3, "x"))
        self.assertEqual(str(Shard.parse("1/1", "x")), "1/1")

    def test_bad_shards_name_the_source_and_the_fix(self):
        cases = {
            "3/2": "there is no shard 3 of 2. Shards count from 1: 1/2 to 2/2",
            "0/3": "there is no shard 0 of 3. Shards count from 1: 1/3 to 3/3",
            "0/0": "splits the suite into no shards. N is how many shards: 1 or more",
            "two/3": "is not a shard. Write I/N, counting from 1: 1/3, 2/3 or 3/3",
            "1/3/4": "is not a shard",
            "-1/3": "is not a shard",
            "": "is not a shard",
        }
        for raw, expected in cases.items():
            with self.subTest(raw=raw), self.assertRaises(ConfigError) as caught:
                Shard.parse(raw, "--sqltx-shard")
            self.assertIn(f"--sqltx-shard = {raw}", str(caught.exception))
            self.assertIn(expected, str(caught.exception))


class TestCIVariables(unittest.TestCase):
    def test_each_ci_system_counted_from_its_own_first_index(self):
        cases = [
            ({"CIRCLE_NODE_INDEX": "0", "CIRCLE_NODE_TOTAL": "4"},
             Shard(1, 4, "CIRCLE_NODE_INDEX/CIRCLE_NODE_TOTAL (CircleCI)")),
            ({"CI_NODE_INDEX": "4", "CI_NODE_TOTAL": "4"}, Shard(4, 4, "CI_NODE_INDEX/CI_NODE_TOTAL (GitLab CI)")),
            ({"BUILDKITE_PARALLEL_JOB": "2", "BUILDKITE_PARALLEL_JOB_COUNT": "3"},
             Shard(3, 3, "BUILDKITE_PARALLEL_JOB/BUILDKITE_PARALLEL_JOB_COUNT (Buildkite)")),
            ({"TEST_SHARD_INDEX": "1", "TEST_TOTAL_SHARDS": "2"},
             Shard(2, 2, "TEST_SHARD_INDEX/TEST_TOTAL_SHARDS (Bazel)")),
        ]
        for environ, expected in cases:
            with self.subTest(environ=environ):
                self.assertEqual(shard_from_ci(environ), expected)

    def test_no_variables_no_shard(self):
        self.assertIsNone(shard_from_ci({}))
        self.assertIsNone(shard_from_ci({"CI_NODE_INDEX": "1"}))  # the count is missing: not a parallel job

    def test_bazel_is_told_the_runner_shards(self):
        with tempfile.TemporaryDirectory() as tmp:
            status = Path(tmp) / "status"
            shard_from_ci({"TEST_SHARD_INDEX": "0", "TEST_TOTAL_SHARDS": "2", "TEST_SHARD_STATUS_FILE": str(status)})
            self.assertTrue(status.exists())

    def test_bad_values_are_one_error(self):
        with self.assertRaises(ConfigError) as caught:
            shard_from_ci({"CIRCLE_NODE_INDEX": "a", "CIRCLE_NODE_TOTAL": "2"})
        self.assertIn("CIRCLE_NODE_INDEX/CIRCLE_NODE_TOTAL (CircleCI) = a/2: is not a job index and count",
                      str(caught.exception))
        with self.assertRaises(ConfigError) as caught:
            shard_from_ci({"CI_NODE_INDEX": "0", "CI_NODE_TOTAL": "2"})  # GitLab counts from 1
        self.assertIn("there is no shard 0 of 2", str(caught.exception))


class TestUnits(unittest.TestCase):
    def test_unit_of_a_unittest_id(self):
        self.assertEqual(unit_of_id("pkg.test_mod.TestOrders.test_total"), "pkg.test_mod.TestOrders")
        self.assertEqual(unit_of_id("pkg.test_mod.TestOrders.test_total:2"), "pkg.test_mod.TestOrders")
        self.assertEqual(unit_of_id("pkg.test_mod.test_function"), "pkg.test_mod")

    def test_unit_of_a_pytest_nodeid(self):
        self.assertEqual(unit_of_nodeid("tests/test_a.py::TestX::test_y[1]"), "tests/test_a.py::TestX")
        self.assertEqual(unit_of_nodeid("tests/test_a.py::test_y[1]"), "tests/test_a.py")


def random_suite(seed, classes=40):
    rng = random.Random(seed)
    return {f"mod{i % 7}.TestClass{i}": rng.randint(1, 40) for i in range(classes)}


class TestPartition(unittest.TestCase):
    def test_every_unit_in_exactly_one_shard(self):
        for total in (1, 2, 3, 4, 7, 50):
            units = random_suite(total)
            parts = [choose(units, Shard(i, total, "t"))[0] for i in range(1, total + 1)]
            with self.subTest(total=total):
                self.assertEqual(sum(len(p) for p in parts), len(units))
                self.assertEqual(set().union(*parts), set(units))

    def test_the_same_on_every_shard_whatever_the_order_it_sees(self):
        units = random_suite(1)
        reordered = dict(reversed(list(units.items())))
        for i in (1, 2, 3):
            self.assertEqual(choose(units, Shard(i, 3, "t")), choose(reordered, Shard(i, 3, "t")))

    def test_balanced_by_durations(self):
        # class times that have nothing to do with their test counts
        rng = random.Random(7)
        units = random_suite(3)
        seconds = {u: rng.uniform(0.1, 8.0) for u in units}
        with tempfile.TemporaryDirectory() as tmp:
            durations = Durations(Path(tmp) / "d.json", {u: (s, units[u]) for u, s in seconds.items()})
            loads = [sum(seconds[u] for u in choose(units, Shard(i, 4, "t"), durations)[0]) for i in range(1, 5)]
            by_count = [sum(seconds[u] for u in choose(units, Shard(i, 4, "t"))[0]) for i in range(1, 5)]
        self.assertLessEqual(max(loads) / statistics.mean(loads), 1.15, loads)
        self.assertGreater(max(by_count) / statistics.mean(by_count), max(loads) / statistics.mean(loads))


class TestDurationsFile(unittest.TestCase):
    def setUp(self):
        tmp = tempfile.TemporaryDirectory()
        self.addCleanup(tmp.cleanup)
        self.path = Path(tmp.name) / "durations.json"

    def test_missing_file_is_a_first_run(self):
        durations = Durations.load(self.path)
        self.assertIsNone(durations.problem)
        weights, warning = durations.weights({"a.A": 3})
        self.assertEqual((weights, warning), ({"a.A": 3.0}, None))

    def test_written_merged_and_read_back(self):
        Durations.load(self.path).record({"a.A": (2.0, 4), "b.B": (1.0, 1)})
        Durations.load(self.path).record({"b.B": (3.0, 2), "c.C": (0.5, 1)})
        durations = Durations.load(self.path)
        self.assertEqual(durations.units, {"a.A": (2.0, 4), "b.B": (3.0, 2), "c.C": (0.5, 1)})
        # a unit the file does not know: its tests times the median time per test (0.5 s)
        weights, warning = durations.weights({"a.A": 4, "d.D": 6})
        self.assertIsNone(warning)
        self.assertEqual(weights, {"a.A": 2.0, "d.D": 3.0})
        self.assertEqual(json.loads(self.path.read_text())["format"], DURATIONS_FORMAT)
        self.assertEqual(sorted(p.name for p in self.path.parent.iterdir()), ["durations.json"])

    def test_corrupt_or_foreign_files_give_a_warning_and_the_split_by_counts(self):
        cases = {
            "{not json": "cannot be read (JSONDecodeError",
            '{"format": "something else", "units": {}}': "is not a durations file",
            f'{{"format": "{DURATIONS_FORMAT}", "units": {{"x.X": {{"seconds": "soon"}}}}}}': "is not a durations file",
            f'{{"format": "{DURATIONS_FORMAT}", "units": {{"other.Suite": {{"seconds": 1, "tests": 1}}}}}}':
                "knows none of this suite's test classes (another suite's?)",
        }
        for text, expected in cases.items():
            with self.subTest(text=text):
                self.path.write_text(text)
                weights, warning = Durations.load(self.path).weights({"a.A": 2, "b.B": 5})
                self.assertEqual(weights, {"a.A": 2.0, "b.B": 5.0})
                self.assertIn(f"durations file {self.path} {expected}", warning)
                self.assertTrue(warning.endswith(": split by test counts"), warning)

    def test_the_shards_files_merge_newest_first(self):
        shard_file = {i: self.path.with_name(f"shard{i}.json") for i in (1, 2)}
        old = {"a.A": (9.0, 1), "b.B": (9.0, 1)}
        for path in shard_file.values():
            Durations(path, dict(old), measured=dict.fromkeys(old, 100.0)).save()  # restored from an earlier run
        Durations.load(shard_file[1]).record({"a.A": (1.0, 1)})  # shard 1 ran A
        Durations.load(shard_file[2]).record({"b.B": (2.0, 1)})  # shard 2 ran B
        broken = self.path.with_name("broken.json")
        broken.write_text("{")
        problems = merge_durations(self.path, [shard_file[1], shard_file[2], broken, self.path.with_name("none.json")])
        self.assertEqual(Durations.load(self.path).units, {"a.A": (1.0, 1), "b.B": (2.0, 1)})
        self.assertEqual(len(problems), 2)
        self.assertIn("broken.json cannot be read", problems[0])
        self.assertIn("none.json does not exist: left out", problems[1])

    def test_a_corrupt_file_is_replaced_by_the_runs_times(self):
        self.path.write_text("{not json")
        Durations.load(self.path).record({"a.A": (1.0, 1)})
        self.assertEqual(Durations.load(self.path).units, {"a.A": (1.0, 1)})


class TestShardRun(unittest.TestCase):
    def test_keep_and_filter_a_suite(self):
        class TestA(unittest.TestCase):
            def test_1(self):
                pass

            def test_2(self):
                pass

        class TestB(unittest.TestCase):
            def test_1(self):
                pass

        loader = unittest.TestLoader()
        suite = unittest.TestSuite([loader.loadTestsFromTestCase(TestA), loader.loadTestsFromTestCase(TestB)])
        ids = suite_ids(suite)
        kept = []
        for i in (1, 2):
            keep, lines = ShardRun(Shard(i, 2, "--sqltx-shard"), None).keep(ids)
            part = suite_ids(filter_suite(suite, keep))
            self.assertEqual(sorted(part), sorted(keep))
            self.assertIn(f"shard {i}/2 (from --sqltx-shard): 1 of 2 test classes", lines[-1])
            kept += part
        self.assertEqual(sorted(kept), sorted(ids))

    def test_import_failures_are_reported_by_every_shard(self):
        failure = "nose2.loader.LoadTestsFailure.test_broken"
        for i in (1, 2, 3):
            keep, _ = ShardRun(Shard(i, 3, "t"), None).keep([failure, "m.A.test_1"])
            self.assertIn(failure, keep)

    def test_times_recorded_per_unit(self):
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "d.json"
            run = ShardRun(None, str(path))
            run.started("m.A.test_1", 10.0)
            run.stopped("m.A.test_1", 10.5)
            run.took("m.A.test_2", 0.25)
            run.took("m.A.test_2", 0.25, new_test=False)  # its teardown
            run.finish()
            self.assertEqual(Durations.load(path).units, {"m.A": (1.0, 2)})


if __name__ == "__main__":
    unittest.main()
