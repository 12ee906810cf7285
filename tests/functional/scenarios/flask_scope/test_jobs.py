"""db.session and an app context pushed by the code under test. Under
flask-session = app-context (the default) the job's context has a Session
of its own, as in production: the test's object keeps what it loaded until
it is expired. Under flask-session = test both are one Session."""

import os
import unittest

from jobs_app import Job, create_app, db, fail_job
from sqlalchemy import select

from nose2_sqltx import DatabaseTest

PER_TEST = os.path.basename(os.getcwd()) == "per_test"


class TestJobs(DatabaseTest, unittest.TestCase):
    def setUp(self):
        self.app = create_app()
        context = self.app.app_context()
        context.push()
        self.addCleanup(context.pop)

    def test_a_job_with_its_own_app_context(self):
        job = Job(status="processing")
        db.session.add(job)
        db.session.commit()
        self.assertEqual(job.status, "processing")  # loaded again after the commit, and kept
        fail_job(self.app, job.id)
        if PER_TEST:
            self.assertEqual(job.status, "broken")  # the job changed this very object
        else:
            self.assertEqual(job.status, "processing")  # another Session's change: not seen until expired
            db.session.expire(job)
            self.assertEqual(job.status, "broken")

    def test_the_session_survives_the_end_of_an_app_context(self):
        job = Job(status="new")
        db.session.add(job)
        db.session.commit()
        with self.app.app_context():
            inner = db.session.get(Job, job.id)
        self.assertEqual(inner is job, PER_TEST)
        self.assertEqual(db.session.scalars(select(Job.status)).all(), ["new"])

    def test_each_test_starts_empty(self):
        self.assertEqual(db.session.scalars(select(Job)).all(), [])
