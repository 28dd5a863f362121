"""``[pci]`` options, as nova.conf has them."""

from oslo_config import cfg

pci_group = cfg.OptGroup("pci", title="PCI passthrough options")

pci_opts = [
    cfg.MultiStrOpt(
        "device_spec",
        default=[],
        deprecated_name="passthrough_whitelist",
        help="PCI devices guests may be given, one JSON object per value, "
        'in Nova\'s format: {"address": "0000:3b:00.*", "vendor_id": '
        '"15b3", "product_id": "101c", "physical_network": "physnet1", '
        '"resource_class": "CUSTOM_NIC_VF", "traits": "CUSTOM_FAST,'
        'HW_NIC_SRIOV"}. address is a glob ([[domain:]bus:]slot.func with '
        "*) or an object of regular expressions per part.",
    ),
    cfg.MultiStrOpt(
        "alias",
        default=[],
        help="A PCI alias, one JSON object per value, in Nova's format: "
        '{"name": "a1", "vendor_id": "10de", "product_id": "20b5", '
        '"device_type": "type-PCI", "numa_policy": "required"}. '
        "numa_policy is one of required, legacy, preferred, socket; a "
        "flavor's or image's hw:pci_numa_affinity_policy overrides it.",
    ),
]


def register_opts(conf):
    conf.register_group(cfg.OptGroup(pci_group.name, title=pci_group.title))
    conf.register_opts(pci_opts, group=pci_group.name)


def list_opts():
    return {pci_group: pci_opts}
