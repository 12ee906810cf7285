"""What the app's engine writes, and the session it works in, are what they
are in production; both go to $ORACLE_OUT for the functional test."""

import json
import os
import unittest

from options_app import documents, engine, session_state, store
from sqlalchemy import String, cast, select

from nose2_sqltx import DatabaseTest


class TestEngineOptions(DatabaseTest, unittest.TestCase):
    def test_json_serializer_and_session_are_the_apps(self):
        store(engine, {"b": 1, "a": [2, 1]})
        stored = self.connection.execute(select(cast(documents.c.body, String))).scalar_one()
        with open(os.environ["ORACLE_OUT"], "w") as out:
            json.dump([stored, session_state(engine)], out)
