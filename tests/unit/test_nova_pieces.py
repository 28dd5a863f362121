"""The pure pieces the Nova adapter stands on, without Nova.

* a candidate's slice groups form a chain in the provider tree, or not
  (what SliceChainFilter keeps);
* a slice template's domain takes Nova's disks, ports, devices and
  metadata, and keeps its own CPUs, memory and GPUs.
"""

import pytest
from lxml import etree

from nova_slices.provider_tree import build_provider_tree
from nova_slices.slices import encoding
from nova_slices.virt.adopt import adopt_devices
from tests.unit.test_slice_spec import seed_tree

TREE = seed_tree()
PTREE = build_provider_tree("host", TREE)
RP = PTREE.provider_of_slice()
PARENTS = {p.uuid: p.parent_uuid for p in PTREE.providers}


def mappings(slice_name, *ancestors):
    out = {"": [PTREE.root.uuid], "_S": [RP[slice_name]]}
    for level, name in enumerate(ancestors, start=1):
        out[encoding.ancestor_group(level)] = [RP[name]]
    return out


@pytest.mark.parametrize(
    "candidate, chain",
    [
        (mappings("1_6", "4_2", "8_1"), True),
        (mappings("1_6", "4_1", "8_1"), False),  # 4_1 is not 1_6's parent
        (mappings("4_1", "8_1"), True),
        (mappings("4_2", "4_1"), False),
        (mappings("8_1"), True),
        ({"": [PTREE.root.uuid]}, True),  # no slice group: not ours
    ],
    ids=["leaf chain", "leaf, wrong parent", "4", "4, sibling", "8", "none"],
)
def test_is_chain(candidate, chain):
    assert encoding.is_chain(candidate, PARENTS) is chain


def test_every_candidate_placement_offers_is_a_chain_or_caught():
    """All pairings Nova could get for a 1-GPU flavor: exactly the real
    chains pass."""
    passed = set()
    for leaf in (f"1_{k}" for k in range(1, 9)):
        for four in ("4_1", "4_2"):
            if encoding.is_chain(mappings(leaf, four, "8_1"), PARENTS):
                passed.add((leaf, four))
    assert passed == {
        (f"1_{k}", "4_1" if k <= 4 else "4_2") for k in range(1, 9)
    }


TEMPLATE = b"""<domain type='kvm'>
  <name>instance-00000001</name>
  <uuid>11111111-2222-3333-4444-555555555555</uuid>
  <memory unit='KiB'>524288</memory>
  <vcpu placement='static'>1</vcpu>
  <cputune><vcpupin vcpu='0' cpuset='1'/></cputune>
  <os><type arch='x86_64' machine='pc'>hvm</type></os>
  <devices>
    <disk type='file' device='disk'>
      <source file='/template/disk'/><target dev='vda' bus='virtio'/>
    </disk>
    <hostdev mode='subsystem' type='pci' managed='yes'>
      <source><address domain='0x0000' bus='0x81' slot='0x00'
        function='0x0'/></source>
    </hostdev>
  </devices>
</domain>"""

NOVA = b"""<domain type='kvm'>
  <name>instance-00000001</name>
  <metadata>
    <nova:instance xmlns:nova='http://openstack.org/xmlns/libvirt/nova/1.1'>
      <nova:name>vm</nova:name>
    </nova:instance>
  </metadata>
  <vcpu>1</vcpu>
  <devices>
    <disk type='file' device='disk'>
      <source file='/nova/instances/uuid/disk'/>
      <target dev='vda' bus='virtio'/>
    </disk>
    <interface type='bridge'>
      <mac address='fa:16:3e:00:00:01'/><source bridge='br-int'/>
    </interface>
    <hostdev mode='subsystem' type='mdev' model='vfio-pci'>
      <source><address uuid='c0ffee00-0000-4000-8000-000000000001'/></source>
    </hostdev>
    <hostdev mode='subsystem' type='pci' managed='yes'>
      <source><address domain='0x0000' bus='0x81' slot='0x00'
        function='0x0'/></source>
    </hostdev>
  </devices>
</domain>"""


def test_template_keeps_its_resources_and_takes_novas_devices():
    domain = adopt_devices(etree.fromstring(TEMPLATE), etree.fromstring(NOVA))
    devices = domain.find("devices")
    assert [s.get("file") for s in devices.iterfind("disk/source")] == [
        "/nova/instances/uuid/disk"
    ]
    assert devices.find("interface/source").get("bridge") == "br-int"
    hostdevs = devices.findall("hostdev")
    # the template's GPU once, Nova's mdev added
    assert [h.get("type") for h in hostdevs] == ["pci", "mdev"]
    assert domain.find("cputune/vcpupin").get("cpuset") == "1"
    assert domain.findtext("memory") == "524288"
    nova_ns = "{http://openstack.org/xmlns/libvirt/nova/1.1}"
    assert domain.find(f"metadata/{nova_ns}instance") is not None
    # <metadata> right after the identity, where libvirt keeps it
    assert [c.tag for c in domain][:3] == ["name", "uuid", "metadata"]
