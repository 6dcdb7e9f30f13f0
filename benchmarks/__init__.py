"""neuralens benchmarks: style-transfer speed, quality against `pastiche`, and high resolution.

Run everything with ``make bench`` (``python -m benchmarks.run``); see benchmarks/README.md.
"""
