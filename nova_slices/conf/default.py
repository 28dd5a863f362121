"""``[DEFAULT]`` options."""

import os

from oslo_config import cfg, types


def _default_state_path():
    base = os.environ.get("XDG_STATE_HOME") or os.path.join(
        os.path.expanduser("~"), ".local", "state"
    )
    return os.path.join(base, "nova-slices")


class AbsolutePath(types.String):
    """A path made absolute (against the working directory) where the
    option is read, from a file, an override or ``--state-path``: paths
    under it are written into domain XML, where libvirt's schema accepts
    only absolute ones (a relative ``--state-path`` made every slice
    template fail validation)."""

    def __call__(self, value):
        value = super().__call__(value)
        if not value.strip():
            # abspath("") is the working directory: never a silent choice
            raise ValueError("a path is required, and it is empty")
        return os.path.abspath(os.path.expanduser(value))


default_opts = [
    cfg.Opt(
        "state_path",
        type=AbsolutePath(),
        default=_default_state_path(),
        sample_default="$XDG_STATE_HOME/nova-slices",
        help="Directory for this host's state: the embedded Placement "
        "database, and the domain XML that the embedded (test-driver) host "
        "keeps across processes, as libvirtd keeps its own config "
        "directory.",
    ),
    cfg.IntOpt(
        "orphan_allocation_grace_seconds",
        default=300,
        min=0,
        help="How long an allocation on this host's providers may stay "
        "without a guest, when no spawn or destroy journal entry explains "
        "it, before `nova-slices sync`, `spawn`, `destroy` or `release` "
        "deletes it. Allocations of a spawn or destroy whose process died "
        "are released at once, and those of one still in progress never; "
        "this grace only covers allocations of unknown origin, counted "
        "from when this host first saw them.",
    ),
    cfg.StrOpt(
        "host",
        help="Name of this compute host as Placement knows it (the root "
        "resource provider's name). Defaults to libvirt's hostname for "
        "real hypervisors and to the host bundle's name for libvirt's "
        "test driver, so that reports are stable across machines.",
    ),
]


def register_opts(conf):
    conf.register_opts(default_opts)


def list_opts():
    return {"DEFAULT": default_opts}
