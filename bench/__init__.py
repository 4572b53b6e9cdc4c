"""Benchmarks of the engine and the recurrent designs against hand-written numpy (``python bench/run.py``)."""
