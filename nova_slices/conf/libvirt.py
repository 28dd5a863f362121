"""``[libvirt]`` options: the connection, the host bundle and slices."""

from oslo_config import cfg

from nova_slices import data

libvirt_group = cfg.OptGroup(
    "libvirt", title="libvirt connection and slice options"
)

connection_opts = [
    cfg.StrOpt(
        "connection_uri",
        default="",
        help="libvirt connection URI. Empty means libvirt's test driver "
        "on the node file of ``host_bundle`` (test:///<host_bundle>/"
        "node.xml), the embedded default. Production hosts set "
        "qemu:///system.",
    ),
    cfg.StrOpt(
        "host_bundle",
        default=data.host_bundle(),
        sample_default="<shipped>/etc/hosts/gpu8-2s",
        help="A host bundle: a directory, or the name of a shipped "
        "bundle (gpu8-2s, nfv-snc-2s). It holds ``node.xml`` (a libvirt "
        "test-driver node file with the host's node devices) and "
        "``capabilities.xml`` (the host's capabilities, which the test "
        "driver cannot report). Used whenever the connection is "
        "libvirt's test driver.",
    ),
    cfg.StrOpt(
        "capabilities_file",
        help="Read host capabilities from this file instead of asking the "
        "connection. Defaults to ``<host_bundle>/capabilities.xml`` for "
        "libvirt's test driver and to the connection's "
        "getCapabilities() otherwise.",
    ),
]

#: the options Nova does not have: registered on Nova's CONF too when the
#: Nova driver is loaded (nova_slices.nova.conf)
slice_opts = [
    cfg.MultiStrOpt(
        "slice_spec",
        default=[],
        help="One slice of this host, repeated once per slice. A JSON "
        'object: {"name": "4_1", "resource_class": '
        '"CUSTOM_SLICE_4_GPU_V1", "template_file": "slice_4_1.xml.j2", '
        '"conflict_parent": "8_1"}. The libvirt-slices spec\'s relaxed '
        'form {name="4_1", "resource_class":"CUSTOM_SLICE_4_GPU_V1", ...} '
        "is accepted too. ``conflict_parent`` names the slice this one "
        "overlaps: slices form a forest and a slice conflicts with its "
        "ancestors and descendants. All slices of one resource class must "
        "have the same shape (ancestor classes and number of leaves).",
    ),
    cfg.StrOpt(
        "slice_template_dir",
        default=data.templates_dir(),
        sample_default="<shipped>/templates",
        help="Directory against which relative ``template_file`` paths of "
        "``slice_spec`` resolve.",
    ),
]

libvirt_opts = connection_opts + slice_opts


def register_opts(conf):
    # a fresh OptGroup per ConfigOpts: an OptGroup object holds its
    # options' overrides, so sharing one would leak them between configs
    conf.register_group(
        cfg.OptGroup(libvirt_group.name, title=libvirt_group.title)
    )
    conf.register_opts(libvirt_opts, group=libvirt_group.name)


def register_slice_opts(conf):
    """Only the slice options, on a CONF that has its own ``[libvirt]``
    (Nova's: its ``connection_uri`` is not ours to register)."""
    conf.register_opts(slice_opts, group=libvirt_group.name)


def list_opts():
    return {libvirt_group: libvirt_opts}
