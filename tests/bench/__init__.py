"""Benchmarks behind `make bench`: figures and ratios against the project's targets, never pass/fail."""
