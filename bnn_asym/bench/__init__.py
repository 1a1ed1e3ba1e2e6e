"""Benchmark harness: results store, runners and reports."""
