"""Hosts without slices in Nova: a pinned guest with a VF and a vGPU, and
the PCI ``socket`` policy's trait.

LibvirtSlicesDriver with no ``slice_spec`` is Nova's libvirt driver;
NUMAFitFilter places the guest for the scheduler.  The VF is asked for
with the ``required`` NUMA policy and sits on cell 1, so the guest must
be pinned there; the vGPU comes from ``resources:VGPU``.  Nova creates
the mdev through the seam its own vGPU tests stub (the kernel's sysfs).
"""

import json

from lxml import etree
from nova.tests.fixtures import libvirt as fakelibvirt
from nova.tests.functional.libvirt import base as nova_base
from nova.tests.functional.libvirt import test_vgpu

from nova_slices.nova.driver import LibvirtSlicesDriver
from tests.nova_functional import base

VF_ALIAS = {
    "name": "vf",
    "vendor_id": fakelibvirt.PCI_VEND_ID,
    "product_id": fakelibvirt.VF_PROD_ID,
    "device_type": "type-VF",
    "numa_policy": "required",
}


class DynamicHostTest(base.SlicesServices, test_vgpu.VGPUTestBase):
    ADDITIONAL_FILTERS = ["NUMATopologyFilter", "PciPassthroughFilter"]

    def setUp(self):
        self.flags(
            device_spec=[
                json.dumps(
                    {
                        "vendor_id": fakelibvirt.PCI_VEND_ID,
                        "product_id": fakelibvirt.VF_PROD_ID,
                    }
                )
            ],
            alias=[json.dumps(VF_ALIAS)],
            group="pci",
        )
        super().setUp()

    def test_pinned_guest_with_a_vf_and_a_vgpu(self):
        self.flags(cpu_dedicated_set="0-7", group="compute")
        self.flags(
            enabled_mdev_types=fakelibvirt.NVIDIA_11_VGPU_TYPE,
            group="devices",
        )
        host = self.start_compute(
            hostname="host1",
            host_info=fakelibvirt.HostInfo(
                cpu_nodes=2, cpu_sockets=1, cpu_cores=2, cpu_threads=2
            ),
            pci_info=fakelibvirt.HostPCIDevicesInfo(
                num_pci=0, num_pfs=1, num_vfs=2, num_mdevcap=1, numa_node=1
            ),
            libvirt_version=self.FAKE_LIBVIRT_VERSION,
            qemu_version=self.FAKE_QEMU_VERSION,
        )
        driver = self.computes[host].driver
        self.assertIsInstance(driver, LibvirtSlicesDriver)
        self.assertIsNone(driver.slices)
        flavor = self._create_flavor(
            vcpu=2,
            memory_mb=1024,
            extra_spec={
                "hw:cpu_policy": "dedicated",
                "pci_passthrough:alias": "vf:1",
                "resources:VGPU": "1",
            },
        )
        server = self._create_server(flavor_id=flavor, networks="none")
        conn = driver._host.get_connection()
        domain = etree.fromstring(
            conn.lookupByUUIDString(server["id"]).XMLDesc(0).encode()
        )
        pins = {
            int(p.get("cpuset")) for p in domain.iterfind("cputune/vcpupin")
        }
        # cell 1 holds CPUs 4-7 and the VF: the required policy put the
        # guest there
        self.assertTrue(pins <= {4, 5, 6, 7}, pins)
        self.assertEqual(2, len(pins))
        types = sorted(
            h.get("type") for h in domain.iterfind("devices/hostdev")
        )
        self.assertEqual(["mdev", "pci"], types)


def pci_alias(name, policy):
    return json.dumps(
        {
            "name": name,
            "vendor_id": fakelibvirt.PCI_VEND_ID,
            "product_id": fakelibvirt.PCI_PROD_ID,
            "device_type": "type-PCI",
            "numa_policy": policy,
        }
    )


class SocketTraitBase(base.SlicesServices, nova_base.ServersTestBase):
    """Two hosts with one PCI device each; "old" lacks
    ``COMPUTE_SOCKET_PCI_NUMA_AFFINITY`` (its driver says it cannot honour
    the ``socket`` policy, as an older libvirt driver would)."""

    ADMIN_API = True
    microversion = "latest"
    ADDITIONAL_FILTERS = ["NUMATopologyFilter", "PciPassthroughFilter"]
    TRAIT = "COMPUTE_SOCKET_PCI_NUMA_AFFINITY"

    def setUp(self):
        self.flags(
            device_spec=[
                json.dumps(
                    {
                        "vendor_id": fakelibvirt.PCI_VEND_ID,
                        "product_id": fakelibvirt.PCI_PROD_ID,
                    }
                )
            ],
            alias=[pci_alias("socket", "socket"), pci_alias("any", "legacy")],
            group="pci",
        )
        super().setUp()
        self.flags(cpu_dedicated_set="0-11", group="compute")
        for host in ("old", "new"):
            self.start_compute(
                hostname=host,
                host_info=base.four_cell_host(),
                pci_info=fakelibvirt.HostPCIDevicesInfo(
                    num_pci=1, numa_node=0
                ),
            )
        old = self.computes["old"].driver
        old.capabilities = dict(
            old.capabilities, supports_socket_pci_numa_affinity=False
        )
        self._run_periodics()  # the tracker drops the trait
        traits = {
            host: self._get_provider_traits(self.compute_rp_uuids[host])
            for host in ("old", "new")
        }
        self.assertNotIn(self.TRAIT, traits["old"])
        self.assertIn(self.TRAIT, traits["new"])

    def flavor(self, alias, **extra):
        return self._create_flavor(
            vcpu=2,
            extra_spec={
                "hw:cpu_policy": "dedicated",
                "pci_passthrough:alias": f"{alias}:1",
                **extra,
            },
        )


class SocketPolicyTraitTest(SocketTraitBase):
    """With NUMAFitFilter, socket-policy requests reach only hosts with
    the trait, whichever key asks for the policy."""

    def test_an_alias_socket_request_reaches_only_hosts_with_the_trait(self):
        socket = self.flavor("socket")
        first = self._create_server(flavor_id=socket, networks="none")
        self.assertEqual("new", first["OS-EXT-SRV-ATTR:host"])
        # "old" still has a free device, but not the trait
        second = self._create_server(
            flavor_id=socket, networks="none", expected_state="ERROR"
        )
        self.assertIn("No valid host", second["fault"]["message"])
        # the same device without the socket policy goes to "old"
        third = self._create_server(
            flavor_id=self.flavor("any"), networks="none"
        )
        self.assertEqual("old", third["OS-EXT-SRV-ATTR:host"])


class NovasOwnSocketTraitTest(SocketTraitBase):
    """What Nova 34 does alone (its NUMATopologyFilter): it asks
    Placement for the trait when the flavor's
    ``hw:pci_numa_affinity_policy`` is ``socket``, but not when the PCI
    alias's ``numa_policy`` is -- the gap NUMAFitFilter closes."""

    def _setup_scheduler_service(self):
        return nova_base.ServersTestBase._setup_scheduler_service(self)

    def test_novas_scheduler_requires_the_trait_for_the_flavor_policy(self):
        flavor = self.flavor(
            "any", **{"hw:pci_numa_affinity_policy": "socket"}
        )
        for _ in range(2):
            server = self._create_server(flavor_id=flavor, networks="none")
            self.assertEqual("new", server["OS-EXT-SRV-ATTR:host"])
            self._delete_server(server)

    def test_novas_scheduler_lets_an_alias_socket_request_through(self):
        socket = self.flavor("socket")
        hosts = set()
        for _ in range(2):
            server = self._create_server(flavor_id=socket, networks="none")
            hosts.add(server["OS-EXT-SRV-ATTR:host"])
        self.assertEqual({"old", "new"}, hosts)
