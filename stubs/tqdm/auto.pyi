# tqdm.auto picks the notebook or the terminal bar at import; both have this interface.
from .std import tqdm as tqdm

__all__ = ["tqdm"]
