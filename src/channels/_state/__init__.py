"""Shared state between processes: ``Lock``, ``Value``, ``Array`` and managed dict/list proxies.

``segment`` makes the unnamed shared memory that ``lock``, ``value`` and
``array`` live in; ``store`` holds managed objects inside a manager server and
``proxies`` reaches them from any process.
"""
