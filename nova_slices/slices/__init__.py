"""Slices: the spec, the tree, and their encoding for Placement.

The flavor key that names a slice class lives here, not in
:mod:`nova_slices.slices.encoding` (which re-exports it): validating a
flavor (``nova-slices request``/``fit``, Nova's extra-spec checks) needs
the name only, not the slice tree's parser.
"""

#: extra spec that names the slice class on a Nova flavor
FLAVOR_CLASS_KEY = "nova_slices:slice_class"
