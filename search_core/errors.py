"""The project's exceptions: one base class, one subclass per kind of bad input.

Every error raised for bad input names the field or file, the bad value, and what was
expected, so the command line can print it as one line without a traceback.
"""

from __future__ import annotations


class E2RNASError(Exception):
    """Base class of every error this project raises on purpose."""


class ConfigError(E2RNASError, ValueError):
    """A configuration key is unknown, missing, or has a value out of range."""


class GenotypeError(E2RNASError, ValueError):
    """A genotype names an unknown op, an out-of-range input, or cannot be parsed."""


class DatasetError(E2RNASError, FileNotFoundError):
    """A dataset is missing, unknown, or not in the expected on-disk format."""


class CheckpointError(E2RNASError):
    """A checkpoint is missing, corrupt, or was written for another configuration."""
