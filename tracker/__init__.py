"""hkma-tracker: config, run orchestration, change detection and the command line."""

__version__ = "0.1.0"
