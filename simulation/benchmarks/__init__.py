"""Benchmark harnesses and table runners (see README.md)."""
