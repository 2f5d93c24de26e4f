"""Benchmarks behind ``mlff bench``. Speed is measured here, never in timed tests."""
