"""Text for messages: short, one line, and never a password.

The one home of the helpers every message is built with: a driver error's
first line, a statement shortened for a message, a URL with its password
masked, a driver's text with the password scrubbed out, where in the user's
code an exception was raised, and the chain of causes behind an exception.
"""

from __future__ import annotations

import os
import re
import traceback
from collections.abc import Iterator

from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError

__unittest = True

__all__ = ["PREFIX", "first_line", "short_sql", "mask_url", "scrub_password", "where_raised", "exception_chain"]

#: what the lines nose2-sqltx prints begin with
PREFIX = "nose2-sqltx"
#: statements in messages are cut to this many characters
SQL_WIDTH = 80
# user:password@ in a string that did not even parse as a URL
_RAW_PASSWORD = re.compile(r"^((?:[^:/@]*://)?[^:/@]*:).*(@)")


def first_line(exc: BaseException) -> str:
    """The first line of a (driver's) error message, for one-line reports."""
    text = str(getattr(exc, "orig", None) or exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def short_sql(statement: object) -> str:
    """``statement`` on one line, cut to :data:`SQL_WIDTH` characters."""
    if isinstance(statement, bytes):
        statement = statement.decode("utf-8", "replace")
    text = " ".join(str(statement).split())
    return text if len(text) <= SQL_WIDTH else text[:SQL_WIDTH - 3] + "..."


def mask_url(url: str | URL) -> str:
    """Return ``url`` as text with its password replaced by ``***``.

    Works on strings that SQLAlchemy cannot parse too, and on passwords with
    an unencoded ``@`` (which SQLAlchemy splits into the host), so that no
    message ever shows a password.
    """
    if isinstance(url, str):
        try:
            parsed = make_url(url)
        except (ArgumentError, ValueError):
            return _RAW_PASSWORD.sub(r"\1***\2", url)
        url = parsed
    if url.host and "@" in url.host:
        url = url.set(password="***", host=url.host.rsplit("@", 1)[1])
    return url.render_as_string(hide_password=True)


def scrub_password(url: URL, exc: BaseException) -> str:
    """The first line of a driver's error, without ``url``'s password in it."""
    text = first_line(exc)
    secrets = [str(url.password or "")]
    if url.host and "@" in url.host:  # an unencoded @ in the password
        secrets.append(url.host.rsplit("@", 1)[0])
    for secret in filter(None, secrets):
        text = text.replace(secret, "***")
    return text


def where_raised(exc: BaseException) -> str:
    """`` (at file:line)`` of the innermost frame that raised ``exc``, or ``""``."""
    frames = traceback.extract_tb(exc.__traceback__)
    if not frames:
        return ""
    frame = frames[-1]
    return f" (at {os.path.relpath(frame.filename)}:{frame.lineno})"


def exception_chain(exc: BaseException) -> Iterator[BaseException]:
    """``exc`` and what it wraps: SQLAlchemy's ``.orig``, else ``__cause__``."""
    seen: set[int] = set()
    cause: BaseException | None = exc
    while cause is not None and id(cause) not in seen:
        seen.add(id(cause))
        yield cause
        cause = getattr(cause, "orig", None) or cause.__cause__
