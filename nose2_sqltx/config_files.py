"""Where the ``[sqltx]`` section is: one configuration for nose2, pytest and ``python -m unittest``.

The section may be in one of three files of the directory the tests run
from: ``pyproject.toml`` (as ``[tool.sqltx]``, the modern home),
``setup.cfg`` or ``unittest.cfg`` (nose2's file; nose2 also reads the files
its ``--config`` names). One file holds it: sections in two files are a
:class:`~nose2_sqltx.errors.ConfigError` that names both, since which one
should win is the user's to say, not a rule to remember. On top of the
file, the environment variables (``SQLTX_DSN`` ...), then the runner's
command-line option (``--sqltx-dsn``).

The ``.cfg`` files are read as nose2 reads them, with ``%`` interpolation
(a URL-encoded ``%40`` is written ``%%40``), so that a key means the same
under every runner. In ``pyproject.toml`` values are TOML's: strings,
booleans, numbers, and lists for the keys that take several paths.
"""

from __future__ import annotations

import configparser
import tomllib
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from .config import check_sections
from .errors import ConfigError

__unittest = True

__all__ = ["SECTION", "CONFIG_FILES", "Section", "find_section", "one_section", "sections_in", "named_sections"]

SECTION = "sqltx"
#: the files looked at, in the order they are named in messages
CONFIG_FILES = ("pyproject.toml", "setup.cfg", "unittest.cfg")


#: (name, its ``(key, value)`` pairs): the run's other databases' sections, ``[sqltx:<name>]``
Named = tuple[tuple[str, tuple[tuple[str, str], ...]], ...]


@dataclass(frozen=True)
class Section:
    """The ``[sqltx]`` section found, as ``(key, value)`` pairs, and the file
    it is in; ``databases``: the ``[sqltx:<name>]`` sections beside it (in
    pyproject.toml, the tables in ``[tool.sqltx]``: ``[tool.sqltx.analytics]``)."""

    path: str
    options: tuple[tuple[str, str], ...]
    databases: Named = ()

    @property
    def active(self) -> bool:
        """Whether the section switches the plugin on (``always-on = false`` keeps it off)."""
        values = [value for key, value in self.options if key.strip().lower() == "always-on"]
        return not values or values[-1].strip().lower() not in ("0", "false", "no", "off")


def find_section(directory: str | Path = ".") -> Section | None:
    """The ``[sqltx]`` section of ``directory``'s config files, or None; a
    :class:`ConfigError` if two files hold one, or a file cannot be read."""
    return one_section(sections_in(directory))


def one_section(found: Iterable[Section]) -> Section | None:
    """The one section among ``found``; two are a :class:`ConfigError` naming both."""
    sections = list(found)
    if len(sections) > 1:
        files = " and ".join(_label(s.path) for s in sections)
        raise ConfigError(
            "[sqltx]", None, f"is set in {files}",
            "Keep the section in one file (pyproject.toml's [tool.sqltx] is the modern home) and delete the other",
        )
    return sections[0] if sections else None


def _label(path: str) -> str:
    return f"{path} [tool.sqltx]" if path.endswith(".toml") else f"{path} [sqltx]"


def sections_in(directory: str | Path = ".", files: Iterable[str] = CONFIG_FILES) -> list[Section]:
    """The ``[sqltx]`` sections of ``files`` (of :data:`CONFIG_FILES`) in ``directory``."""
    found = []
    for name in files:
        path = Path(directory) / name
        if path.is_file():
            section = _from_toml(path) if name.endswith(".toml") else _from_cfg(path)
            if section is not None:
                found.append(section)
    return found


def _from_toml(path: Path) -> Section | None:
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError("[tool.sqltx]", None, f"cannot be read: {path.name} is not valid TOML ({exc})",
                          "Fix the file's TOML syntax") from exc
    tool = data.get("tool", {})
    table = tool.get(SECTION) if isinstance(tool, dict) else None
    if table is None:
        check_sections(tool if isinstance(tool, dict) else [], SECTION)
        return None
    if not isinstance(table, dict):
        raise ConfigError("[tool.sqltx]", None, f"in {path.name} is not a table",
                          "Write it as a table: [tool.sqltx] followed by key = value lines")
    return Section(path.name, tuple((key, _toml_value(key, value)) for key, value in table.items()
                                    if not isinstance(value, dict)),
                   tuple((name, tuple((key, _toml_value(key, value)) for key, value in inner.items()))
                         for name, inner in table.items() if isinstance(inner, dict)))


def _toml_value(key: str, value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (str, int)):
        return str(value)
    if isinstance(value, list) and all(isinstance(item, str) for item in value):
        return "\n".join(value)
    raise ConfigError(key, repr(value), "in pyproject.toml's [tool.sqltx] is not a string, a boolean or a list of "
                      "strings", f'Write it as {key} = "..." (or a list of strings for several paths)')


def _from_cfg(path: Path) -> Section | None:
    parser = configparser.ConfigParser()
    try:
        parser.read(path, encoding="utf-8")
    except (configparser.Error, UnicodeDecodeError) as exc:
        raise ConfigError("[sqltx]", None,
                          f"cannot be read: {path.name} is not a valid INI file ({type(exc).__name__})",
                          "Fix the file's syntax (INI: [section] headers and key = value lines)") from exc
    if not parser.has_section(SECTION):
        check_sections(parser.sections(), SECTION)
        return None
    try:
        options = tuple(parser.items(SECTION))
        databases = named_sections(parser)
    except configparser.InterpolationError as exc:
        raise ConfigError("[sqltx]", None, f"in {path.name} has a lone % ({type(exc).__name__})",
                          "Write a URL-encoded %40 as %%40 (the .cfg files use % interpolation), "
                          "or set SQLTX_DSN instead") from exc
    return Section(path.name, options, databases)


def named_sections(parser: configparser.RawConfigParser) -> Named:
    """The ``[sqltx:<name>]`` sections of a parsed ``.cfg`` file (nose2's too), in the file's order."""
    return tuple((name[len(SECTION) + 1:], tuple(parser.items(name))) for name in parser.sections()
                 if name.startswith(f"{SECTION}:"))
