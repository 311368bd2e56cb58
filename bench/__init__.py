"""Benchmarks of the engine: the control link, client routing, failover and boot.

``python -m bench`` (``make bench``) runs them all and writes JSON results and PNG
plots to ``bench/results``; ``python -m bench --smoke`` is a seconds-long version.
"""
