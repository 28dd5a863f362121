"""Entry point for ``oslo-config-generator`` (namespace ``nova_slices``)."""

from nova_slices.conf import MODULES


def list_opts():
    groups = {}
    for module in MODULES:
        for group, opts in module.list_opts().items():
            groups.setdefault(group, []).extend(opts)
    return [(group, opts) for group, opts in groups.items()]
