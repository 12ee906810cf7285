"""A module of the project the migrations import: it is part of the schema cache's key."""

KINDS = ["wall", "floor", "corner"]
