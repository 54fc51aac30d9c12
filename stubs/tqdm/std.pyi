# Partial: the bar class, with the options and methods typed-channels uses.
from collections.abc import Iterable, Iterator, Mapping
from types import TracebackType
from typing import Generic, NoReturn, TypeVar, overload

from _typeshed import Incomplete, SupportsWrite
from typing_extensions import Self

__all__ = ["tqdm"]

def __getattr__(name: str) -> Incomplete: ...

_T = TypeVar("_T")

class tqdm(Generic[_T]):
    n: float
    total: float | None
    desc: str

    @overload
    def __init__(
        self,
        iterable: Iterable[_T],
        desc: str | None = None,
        total: float | None = None,
        leave: bool | None = True,
        file: SupportsWrite[str] | None = None,
        ncols: int | None = None,
        mininterval: float = 0.1,
        maxinterval: float = 10.0,
        miniters: float | None = None,
        ascii: bool | str | None = None,
        disable: bool | None = False,
        unit: str = "it",
        unit_scale: bool | float = False,
        dynamic_ncols: bool = False,
        smoothing: float = 0.3,
        bar_format: str | None = None,
        initial: float = 0,
        position: int | None = None,
        postfix: Mapping[str, object] | str | None = None,
        unit_divisor: float = 1000,
        colour: str | None = None,
        delay: float = 0,
    ) -> None: ...
    @overload
    def __init__(
        self: tqdm[NoReturn],
        iterable: None = None,
        desc: str | None = None,
        total: float | None = None,
        leave: bool | None = True,
        file: SupportsWrite[str] | None = None,
        ncols: int | None = None,
        mininterval: float = 0.1,
        maxinterval: float = 10.0,
        miniters: float | None = None,
        ascii: bool | str | None = None,
        disable: bool | None = False,
        unit: str = "it",
        unit_scale: bool | float = False,
        dynamic_ncols: bool = False,
        smoothing: float = 0.3,
        bar_format: str | None = None,
        initial: float = 0,
        position: int | None = None,
        postfix: Mapping[str, object] | str | None = None,
        unit_divisor: float = 1000,
        colour: str | None = None,
        delay: float = 0,
    ) -> None: ...
    def __iter__(self) -> Iterator[_T]: ...
    def __len__(self) -> int: ...
    def __enter__(self) -> Self: ...
    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...
    def update(self, n: float | None = 1) -> bool | None: ...
    def refresh(self, nolock: bool = False, lock_args: tuple[object, ...] | None = None) -> None: ...
    def close(self) -> None: ...
    def clear(self, nolock: bool = False) -> None: ...
    def reset(self, total: float | None = None) -> None: ...
    def set_description(self, desc: str | None = None, refresh: bool | None = True) -> None: ...
    def set_postfix_str(self, s: str = "", refresh: bool | None = True) -> None: ...
