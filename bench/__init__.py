"""Benchmarks of the backend: case creation, the queue's first page, feed latency, claim races.

Run them all from the repository root with ``.venv/bin/python -m bench`` (``--help`` for the
options); ``docs/benchmarks.md`` explains each figure. Performance is expressed as ratios
against a baseline measured in the same run, never as timed assertions in the test suite.
"""
