"""Fitting guests onto host NUMA cells: pure functions over values."""
