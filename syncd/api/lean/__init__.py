"""The lean path of the hot list routes: see middleware.py."""

from syncd.api.lean.middleware import LeanListMiddleware

__all__ = ["LeanListMiddleware"]
