"""The ``channels`` command line."""
