"""Benchmarks: each module prints figures and ratios, never pass/fail. Run `python -m bench --list`."""
