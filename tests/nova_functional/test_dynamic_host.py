"""A host without slices in Nova: a pinned guest with a VF and a vGPU.

LibvirtSlicesDriver with no ``slice_spec`` is Nova's libvirt driver;
NUMAFitFilter places the guest for the scheduler.  The VF is asked for
with the ``required`` NUMA policy and sits on cell 1, so the guest must
be pinned there; the vGPU comes from ``resources:VGPU``.  Nova creates
the mdev through the seam its own vGPU tests stub (the kernel's sysfs).
"""

import json

from lxml import etree
from nova.tests.fixtures import libvirt as fakelibvirt
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
