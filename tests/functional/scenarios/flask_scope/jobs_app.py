"""A Flask-SQLAlchemy app with background jobs: a job callback pushes an app
context of its own, as job runners and CLI commands do."""

import os

from flask import Flask
from flask_sqlalchemy import SQLAlchemy
from sqlalchemy import String
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class Base(DeclarativeBase):
    pass


db = SQLAlchemy(model_class=Base)


class Job(db.Model):
    __tablename__ = "sqltx_job"
    id: Mapped[int] = mapped_column(primary_key=True)
    status: Mapped[str] = mapped_column(String(20))


def create_app():
    app = Flask(__name__)
    app.config["SQLALCHEMY_DATABASE_URI"] = os.environ.get("SQLTX_DSN", "postgresql://jobs@jobs.invalid/jobs")
    db.init_app(app)
    return app


def fail_job(app, job_id):
    """The job runner's callback: its own app context, its own commit."""
    with app.app_context():
        job = db.session.get(Job, job_id)
        job.status = "broken"
        db.session.commit()
