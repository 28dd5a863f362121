"""The Nova shell: what a Nova installation loads from this package.

``driver`` (``compute_driver``), ``filters`` (the scheduler's), ``conf``
(this project's options on Nova's CONF), ``host`` and ``numa`` (Nova's
values in the core's terms) import Nova and are only loaded by Nova, or
with the ``[nova]`` extra installed; ``extra_specs`` (nova-api's
validators) imports Nova only when nova-api calls it.  The core and the
``nova-slices`` command never import this package's Nova modules.
"""
