"""Dagster resources and lake IO of Spymaster."""

from .lake import Lake
from .resources import SpymasterResource

__all__ = ["Lake", "SpymasterResource"]
