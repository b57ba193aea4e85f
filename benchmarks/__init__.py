"""Quipu benchmarks: ingest throughput and projection rebuild (see benchmarks/README.md).

Run them from the repository root as modules, e.g. ``python -m benchmarks.run --quick``.
"""
