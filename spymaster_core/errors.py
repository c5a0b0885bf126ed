"""Errors raised for bad input, each naming the file or argument and the reason."""

from __future__ import annotations


class SpymasterError(Exception):
    """Base class of every error Spymaster raises on purpose."""


class RawDataError(SpymasterError):
    """A raw Databento file is unreadable, truncated, or lacks what a session needs.

    The message always starts with the file path (or the session date when no file is at fault).
    """


class LakeWriteError(SpymasterError):
    """A lake partition could not be written (no space left, permission denied, read-only file
    system); the message starts with the partition's path and ends with the system's reason."""


class MissingPartitionError(SpymasterError):
    """An upstream lake partition has not been materialized yet; the message says which asset to run."""


class UnknownProductError(SpymasterError, KeyError):
    """A product symbol the product table lacks; the message lists the known ones."""

    def __str__(self) -> str:  # KeyError quotes its argument: say it plainly
        return str(self.args[0]) if self.args else ""
