"""Where the shipped data (host bundles, slice templates) lives.

From a source checkout (including an editable install) the files sit at the
top of the tree, beside the package: ``etc/hosts/`` and ``templates/``.  A
regular wheel install places them under ``<prefix>/share/nova-slices/``
(``[options.data_files]`` in setup.cfg).  We look in that order so that a
developer editing a template in the checkout sees the change at once.
"""

import os
import sys

_CHECKOUT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_SHARE = os.path.join(sys.prefix, "share", "nova-slices")

DEFAULT_HOST_BUNDLE_NAME = "gpu8-2s"


def _first_existing(*candidates):
    for path in candidates:
        if os.path.isdir(path):
            return path
    # Report the checkout location: it is what a developer would fix.
    return candidates[0]


def templates_dir():
    """Directory of the shipped jinja2 slice templates."""
    return _first_existing(
        os.path.join(_CHECKOUT, "templates"),
        os.path.join(_SHARE, "templates"),
    )


def hosts_dir():
    """Directory holding the shipped host bundles, one sub-directory each."""
    return _first_existing(
        os.path.join(_CHECKOUT, "etc", "hosts"),
        os.path.join(_SHARE, "hosts"),
    )


def host_bundle(name=DEFAULT_HOST_BUNDLE_NAME):
    """Path of a shipped host bundle by name (e.g. ``gpu8-2s``)."""
    return os.path.join(hosts_dir(), name)


def shipped_bundles():
    """Names of the shipped host bundles."""
    root = hosts_dir()
    if not os.path.isdir(root):
        return []
    return sorted(
        n for n in os.listdir(root) if os.path.isdir(os.path.join(root, n))
    )


def resolve_bundle(value):
    """A bundle directory from a path or a shipped bundle's name.

    A bare name (no path separator) that is not a directory here names a
    shipped bundle, so ``host_bundle = nfv-snc-2s`` works from a checkout
    and from an installed package alike.
    """
    if os.sep in value or os.path.isdir(value):
        return os.path.abspath(value)
    return host_bundle(value)
