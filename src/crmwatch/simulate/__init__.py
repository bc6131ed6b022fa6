"""Simulated activity: volume data for benchmarks (the realistic org and attack scenarios:
issue 5)."""
