"""The compute side: one host driver, a slice or a dynamic strategy.

``base`` holds what every host shares (devices, provider sync, destroy,
reconciling libvirt with Placement), ``slices`` and ``dynamic`` the two
strategies, ``factory`` the choice between them.  The ``nova-slices``
command and the Nova driver are thin shells over these.
"""
