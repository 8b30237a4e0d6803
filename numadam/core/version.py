"""numadam's version: the installed distribution's (``version`` in pyproject.toml), read once."""

import functools
import importlib.metadata


@functools.cache
def package_version():
    """The installed numadam's version, or ``"unknown"`` for a source tree that is not installed."""
    try:
        return importlib.metadata.version("numadam")
    except importlib.metadata.PackageNotFoundError:
        return "unknown"
