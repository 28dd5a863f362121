"""Integration points that a Nova installation loads from this package.

Nothing here imports Nova at module import time: these modules are found
through entry points and only touch Nova when Nova calls them.
"""
