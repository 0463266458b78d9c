"""Benchmarks side by side with the original SDK and its peers (issue 6).

Run ``python -m benchmarks.run`` (or ``nox -s bench``); ``--quick`` only
checks that every benchmark still runs.  See ``docs/performance.md``.
"""
