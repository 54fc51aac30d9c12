"""The local backends' shared core: a pipe, robust locks and an overflow file."""
