"""Simulated activity: a realistic retail org with the 2025 attacks and their ground truth
(``org.simulate``), and volume data for benchmarks (``volume``)."""
