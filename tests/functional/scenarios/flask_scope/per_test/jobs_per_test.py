"""The tests one directory up, run with flask-session = test (nose2 jobs_per_test)."""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from test_jobs import TestJobs  # noqa: F401 - run here, under this directory's config
