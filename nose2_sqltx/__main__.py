"""``python -m nose2_sqltx``: its commands, and ``--help`` for every setting."""

from __future__ import annotations

import sys

from .config import DATABASE_KEYS, ENVIRONMENT, KEY_HELP, PUBLIC_KEYS
from .environment import CACHE_DIR_ENV, NAMED_DSN_ENV
from .postmaster import stop_kept_servers
from .sharding import merge_durations

USAGE = "usage: python -m nose2_sqltx [--help | stop-server | merge-durations OUT FILE...]"


def help_text() -> str:
    """What ``--help`` prints: the commands, the ``[sqltx]`` keys and the environment variables."""
    width = max(len(key) for key in PUBLIC_KEYS) + 2
    keys = "\n".join(f"  {key:<{width}}{KEY_HELP[key]}" for key in PUBLIC_KEYS)
    named_dsn = NAMED_DSN_ENV.format("<NAME>")
    env_width = max(len(name) for name in [*ENVIRONMENT.values(), CACHE_DIR_ENV, named_dsn]) + 2
    environment = "\n".join(f"  {name:<{env_width}}wins over {key}" for key, name in ENVIRONMENT.items())
    environment += f"\n  {named_dsn:<{env_width}}wins over dsn in [sqltx:<name>]"
    environment += f"\n  {CACHE_DIR_ENV:<{env_width}}where initialized data directories and schema builds are cached"
    databases = "\n".join(f"  {line}" for line in _wrapped(", ".join(DATABASE_KEYS), 74))
    return f"""{USAGE}

nose2-sqltx: every test on your real database, in a transaction that is
rolled back, under nose2, pytest or python -m unittest. Configure it under
[tool.sqltx] in pyproject.toml (or [sqltx] in setup.cfg or unittest.cfg: one
of them). nose2 loads it with "plugins = nose2_sqltx" under [unittest] in
unittest.cfg (or nose2.cfg); pytest with the section, SQLTX_DSN or --sqltx;
under python -m unittest the first DatabaseTest class opens the run.

commands:
  --help         this text
  stop-server    stop the throwaway servers that keep-server left running
  merge-durations OUT FILE...
                 merge the durations files of a CI run's shards into OUT
                 (the newest time of each test class wins)

[sqltx] keys:
{keys}

[sqltx:<name>] sections: another database of the run (self.databases["<name>"]), with these keys:
{databases}

environment variables:
{environment}

nose2 options:
  --sqltx        switch the plugin on where always-on = false
  --sqltx-dsn    the database URL for this run (wins over SQLTX_DSN and dsn)
  --sqltx-shard  run shard I/N of the suite (wins over SQLTX_SHARD and shard)
  -N 2           two parallel workers, each with its own transaction

pytest options:
  --sqltx        switch the plugin on (also without a section or SQLTX_DSN)
  --sqltx-dsn    the database URL for this run (wins over SQLTX_DSN and dsn)
  --sqltx-shard  run shard I/N of the suite (wins over SQLTX_SHARD and shard)
  -n 2           two pytest-xdist workers, each with its own transaction

The README has the whole story of every setting."""


def _wrapped(text: str, width: int) -> list[str]:
    lines: list[str] = []
    for word in text.split(" "):
        if lines and len(lines[-1]) + 1 + len(word) <= width:
            lines[-1] += " " + word
        else:
            lines.append(word)
    return lines


def main(argv: list[str]) -> int:
    if argv in (["--help"], ["-h"], ["help"]):
        print(help_text())
        return 0
    if argv == ["stop-server"]:
        stopped = stop_kept_servers()
        for line in stopped:
            print(f"stopped {line}")
        if not stopped:
            print("no kept server was running")
        return 0
    if argv[:1] == ["merge-durations"]:
        if len(argv) < 3:
            print(f"nose2-sqltx: error: merge-durations needs OUT and at least one FILE. {USAGE}", file=sys.stderr)
            return 2
        for problem in merge_durations(argv[1], argv[2:]):
            print(f"nose2-sqltx: warning: {problem}", file=sys.stderr)
        return 0
    given = " ".join(argv) if argv else "nothing"
    print(f"nose2-sqltx: error: unknown command: {given}. {USAGE}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
