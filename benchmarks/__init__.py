"""Benchmarks: parse, render, end to end, scale and memory, each as a ratio to a reference
measured in the same process tree on the same machine (``bash scripts/bench.sh``).

Nothing here asserts a time: the command prints a table (figure, value, reference, ratio,
target, met?) and writes it to ``var/bench/latest.md``. Every measurement runs in a child
process started by :mod:`benchmarks.__main__`, so peak RSS is that child's and nothing one
figure imports or caches leaks into the next.
"""
