"""fusionbench harness: clip loaders, training, measurement, results, reports and the `bench` CLI."""

__version__ = "0.1.0"
