"""Warning category used by hypersst."""

__all__ = ["HyperSSTWarning"]


class HyperSSTWarning(UserWarning):
    """Warning raised by hypersst for options that are ignored or results that need care."""
