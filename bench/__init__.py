"""Reproducible benchmarks that print ratios (`python -m bench.bench_sync`)."""
