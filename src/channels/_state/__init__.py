"""Shared state between processes: ``Lock``, ``Value`` and ``Array`` in shared memory.

``segment`` makes the unnamed shared memory that ``lock``, ``value`` and
``array`` live in. A manager server's dicts and lists are the manager
backend's (``_backends.manager.proxies`` and ``store``).
"""
