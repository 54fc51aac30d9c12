"""The engine every backend shares.

The contract a backend's core implements, the handles users hold, waiting
(blocking, asyncio, trio), ``select``, and the books of a channel's handles.
"""
