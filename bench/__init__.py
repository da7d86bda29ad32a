"""Benchmarks: speed targets as printed ratios and JSON reports, never timed assertions in tests."""
