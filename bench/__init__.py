"""Benchmarks that print figures (not tests): `make bench` and `make soak`."""
