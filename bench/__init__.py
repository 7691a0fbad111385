"""Benchmarks that run dockyard beside its peers and print ratios (``make bench``)."""
