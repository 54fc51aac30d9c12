"""Process-level tools.

Whether a pid is alive, a lock its holder's death cannot wedge, and the
children being started with a sender handle.
"""
