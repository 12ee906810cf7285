"""The benchmarks' spread (bench/common.py): percentiles within the samples."""

import unittest

from bench.common import spread


class TestSpread(unittest.TestCase):
    def test_percentiles_stay_within_the_samples(self):
        # three spread samples of a 1-round benchmark: the default quantiles gave a p10 of -14.8
        self.assertEqual(spread([5.0, 38.0, 61.0]), (38.0, 11.6, 56.4))
        for samples in ([1.0, 2.0], [0.2, 0.1, 9.0, 0.3], [float(n) for n in range(100)]):
            with self.subTest(samples=samples):
                median, p10, p90 = spread(samples)
                self.assertLessEqual(min(samples), p10)
                self.assertLessEqual(p10, median)
                self.assertLessEqual(median, p90)
                self.assertLessEqual(p90, max(samples))
        self.assertEqual(spread([4.0]), (4.0, 4.0, 4.0))
