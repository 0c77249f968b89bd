"""Benchmarks for ticket-gateway: `python -m bench` (or `bench/run`). Prints figures; asserts nothing."""
