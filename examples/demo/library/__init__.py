"""A small lending library: the app the demo's tests run against."""
