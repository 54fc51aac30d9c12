"""``manager``: channels held by a ``multiprocessing`` manager server, on this or other machines."""

from .channel import ManagerChannel as ManagerChannel

__all__ = ["ManagerChannel"]
