"""Imported by the main process only (workers are forked after it): point the
workers' SQLTX_DSN at a closed port, so that each worker's connection fails
while the main process's own check passed."""

import os

from scenario_models import Base  # noqa: F401

os.environ["SQLTX_DSN"] = "postgresql://postgres@127.0.0.1:1/test"
