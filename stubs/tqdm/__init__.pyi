# Partial: what typed-channels uses of tqdm.
from _typeshed import Incomplete

from .std import tqdm as tqdm

__version__: str

def __getattr__(name: str) -> Incomplete: ...
