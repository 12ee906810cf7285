"""The shared schema plus objects that are wrong on purpose."""

from scenario_models import *  # noqa: F403
from scenario_models import Reference, insert

not_metadata = 42


def broken_fixture(connection):
    connection.execute(insert(Reference), [{"id": 1}])
    raise ValueError("the fixture broke on purpose")
