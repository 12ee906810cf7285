"""pytest collects the tests of this directory only: the subdirectories are scenarios of their own."""

collect_ignore = ["async", "ended", "flask_binds", "hold", "realcommits", "toml"]
