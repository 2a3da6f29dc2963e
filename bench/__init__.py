"""Benchmarks, each reported as ratios against a baseline measured in the same run.

`python -m bench` (`make bench`) runs every module's `main()`; `python -m bench store`
runs only `bench/store.py`. The database comes from DATABASE_URL, as for the tests; each
module works in a throw-away test database it creates and destroys.
"""
