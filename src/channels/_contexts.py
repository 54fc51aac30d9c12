"""Reading a ``context=``: None, a start method name, or a ``multiprocessing`` context.

Kept apart from ``_config`` so that the pool, which needs only this, does not
import the spec parser.
"""

from __future__ import annotations

import multiprocessing
from multiprocessing.context import BaseContext

from ._errors import ConfigError

__all__ = ["resolve_context"]


def resolve_context(context: object) -> BaseContext:
    """Turn ``context`` (None, a start method name or a context) into a context."""
    if context is None:
        return multiprocessing.get_context()
    if isinstance(context, BaseContext):
        return context
    if isinstance(context, str):
        try:
            return multiprocessing.get_context(context)
        except ValueError:
            methods = ", ".join(repr(m) for m in multiprocessing.get_all_start_methods())
            raise ConfigError(
                f"unknown start method {context!r}; choose one of {methods}"
            ) from None
    raise ConfigError(
        f"context must be a start method name or a multiprocessing context, not {context!r}"
    )
