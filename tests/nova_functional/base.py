"""Nova's own functional harness, with this package's driver and filters.

Nova 34's ``ServersTestBase`` runs the real API, conductor, scheduler and
nova-compute in one process, over fakelibvirt and an in-process
Placement.  Here nova-compute loads ``slices_ext.driver.LibvirtSlicesDriver``
(the shim this distribution installs) and the scheduler adds
``SliceChainFilter``.  The slice host is fakelibvirt's: 2 sockets x 2 NUMA
cells x 3 CPUs, 8 GPUs, carved like the libvirt-slices spec's example (8_1
> 4_1, 4_2 > 1_1..1_8), with templates written for it below.
"""

import json
import os
import sys

import fixtures
import nova.conf
from lxml import etree
from nova.tests.fixtures import libvirt as fakelibvirt
from nova.tests.functional.libvirt import base

# the shim must import: this is what nova-compute does with compute_driver
import nova.virt.slices_ext.driver  # noqa: F401  isort: skip
from nova_slices.nova import driver as slices_driver
from nova_slices.slices import encoding
from nova_slices.slices.spec import parse_slice_spec
from nova_slices.slices.tree import build_tree

CONF = nova.conf.CONF
DRIVER = "slices_ext.driver.LibvirtSlicesDriver"
CELLS, CPUS_PER_CELL = 4, 3
GPUS = tuple(f"0000:81:{slot:02x}.0" for slot in range(8))
LEAF_MEMORY_KIB = 512 * 1024

BASE_TEMPLATE = """\
<domain type='kvm'>
  <name>{{ instance.name }}</name>
  <uuid>{{ instance.uuid }}</uuid>
  <memory unit='KiB'>{{ memory_kib }}</memory>
  <vcpu placement='static'>{{ cpus | length }}</vcpu>
  <cputune>
{% for cpu in cpus %}
    <vcpupin vcpu='{{ loop.index0 }}' cpuset='{{ cpu }}'/>
{% endfor %}
    <emulatorpin cpuset='{{ emulator }}'/>
  </cputune>
  <numatune>
    <memory mode='strict' nodeset='{{ nodes }}'/>
  </numatune>
  <os>
    <type arch='x86_64' machine='pc'>hvm</type>
    <boot dev='hd'/>
  </os>
  <devices>
{% for gpu in gpus %}
{% set dbs = gpu.split(':') %}{% set sf = dbs[2].split('.') %}
    <hostdev mode='subsystem' type='pci' managed='yes'>
      <source>
        <address domain='0x{{ dbs[0] }}' bus='0x{{ dbs[1] }}'
                 slot='0x{{ sf[0] }}' function='0x{{ sf[1] }}'/>
      </source>
    </hostdev>
{% endfor %}
  </devices>
</domain>
"""


def leaf(k):
    """Leaf slice 1_k (1-based): GPU k-1, one CPU of its cell."""
    cell = (k - 1) // 2
    return {
        "cells": [cell],
        "cpus": [CPUS_PER_CELL * cell + 1 + (k - 1) % 2],
        "gpus": [GPUS[k - 1]],
    }


def union(*leaves):
    return {
        key: sorted({x for part in leaves for x in part[key]})
        for key in ("cells", "cpus", "gpus")
    }


#: slice name -> (resource class, parent, what its template holds)
SLICES = {
    "8_1": ("CUSTOM_SLICE_8_GPU_V1", None, union(*map(leaf, range(1, 9)))),
    "4_1": ("CUSTOM_SLICE_4_GPU_V1", "8_1", union(*map(leaf, range(1, 5)))),
    "4_2": ("CUSTOM_SLICE_4_GPU_V1", "8_1", union(*map(leaf, range(5, 9)))),
    **{
        f"1_{k}": (
            "CUSTOM_SLICE_1_GPU_V1",
            "4_1" if k <= 4 else "4_2",
            leaf(k),
        )
        for k in range(1, 9)
    },
}
ONE, FOUR, EIGHT = (f"CUSTOM_SLICE_{n}_GPU_V1" for n in (1, 4, 8))


def slice_template(holds):
    emulator = ",".join(str(CPUS_PER_CELL * c) for c in holds["cells"])
    return (
        "{% extends 'base.xml.j2' %}\n"
        f"{{% set cpus = {holds['cpus']} %}}\n"
        f"{{% set gpus = {holds['gpus']} %}}\n"
        f"{{% set emulator = '{emulator}' %}}\n"
        f"{{% set nodes = '{','.join(map(str, holds['cells']))}' %}}\n"
        f"{{% set memory_kib = {LEAF_MEMORY_KIB * len(holds['gpus'])} %}}\n"
    )


def slice_specs():
    out = []
    for name, (rc, parent, _) in SLICES.items():
        spec = {
            "name": name,
            "resource_class": rc,
            "template_file": f"slice_{name}.xml.j2",
        }
        if parent:
            spec["conflict_parent"] = parent
        out.append(json.dumps(spec))
    return out


def write_templates(directory):
    with open(os.path.join(directory, "base.xml.j2"), "w") as f:
        f.write(BASE_TEMPLATE)
    for name, (_, _, holds) in SLICES.items():
        path = os.path.join(directory, f"slice_{name}.xml.j2")
        with open(path, "w") as f:
            f.write(slice_template(holds))


def four_cell_host():
    """fakelibvirt's host: 2 sockets x 2 NUMA cells x 3 CPUs, 16 GiB."""
    return fakelibvirt.HostInfo(
        cpu_nodes=2,
        cpu_sockets=2,
        cpu_cores=CPUS_PER_CELL,
        cpu_threads=1,
        kB_mem=16 * 1024 * 1024,
    )


def use_installed_api_paste(test):
    """The wheel installs api-paste.ini under <prefix>/etc, not beside
    the nova package where the harness looks by default."""
    test.flags(
        api_paste_config=os.path.join(
            sys.prefix, "etc", "nova", "api-paste.ini"
        ),
        group="wsgi",
    )


def start_scheduler_with_numa_fit_filter(test):
    """Start the scheduler with NUMAFitFilter where the test enables
    NUMATopologyFilter (Nova's NUMA tests add it through
    ADDITIONAL_FILTERS; its place in the order matters, PCI tests check
    which filter ran first), and with this package's filters available."""
    enabled = [
        "NUMAFitFilter" if f == "NUMATopologyFilter" else f
        for f in CONF.filter_scheduler.enabled_filters
        + test.ADDITIONAL_FILTERS
    ]
    if "NUMAFitFilter" not in enabled:
        enabled.append("NUMAFitFilter")
    test.flags(
        available_filters=[
            "nova.scheduler.filters.all_filters",
            "nova_slices.nova.filters.SliceChainFilter",
            "nova_slices.nova.filters.NUMAFitFilter",
        ],
        enabled_filters=enabled,
        group="filter_scheduler",
    )
    return test.start_service("scheduler")


class SlicesServices:
    """Mixin for Nova's libvirt test bases: nova-compute loads this
    package's driver through its shim, the scheduler has its filters."""

    def _setup_services(self):
        use_installed_api_paste(self)
        super()._setup_services()

    def _setup_compute_service(self):
        self.flags(compute_driver=DRIVER)

    def _setup_scheduler_service(self):
        return start_scheduler_with_numa_fit_filter(self)


class SliceHostTestBase(SlicesServices, base.ServersTestBase):
    ADMIN_API = True
    microversion = "latest"
    ADDITIONAL_FILTERS = ["SliceChainFilter"]

    def setUp(self):
        super().setUp()
        self.template_dir = self.useFixture(fixtures.TempDir()).path
        write_templates(self.template_dir)
        self.flags(
            slice_spec=slice_specs(),
            slice_template_dir=self.template_dir,
            group="libvirt",
        )
        tree = build_tree(
            [parse_slice_spec(s, self.template_dir) for s in slice_specs()]
        )
        self.tree = tree
        # flavors exactly as `nova-slices flavor-specs` prints them
        self.flavors = {
            rc: self._create_flavor(
                name=rc.lower(),
                vcpu=1,
                memory_mb=512,
                disk=1,
                ephemeral=0,
                extra_spec=form["nova_flavor"],
            )
            for rc, form in encoding.all_flavor_specs(tree).items()
        }

    # -- hosts ---------------------------------------------------------
    def start_slice_compute(self, hostname="slice1", mdev_capable=0):
        """A slice host; ``mdev_capable`` more PCI devices (after the
        GPUs) offer Nova's vGPU types."""
        self.start_compute(
            hostname=hostname,
            host_info=four_cell_host(),
            pci_info=fakelibvirt.HostPCIDevicesInfo(
                num_pci=len(GPUS),
                num_pfs=0,
                num_vfs=0,
                num_mdevcap=mdev_capable,
                numa_node=0,
            ),
        )
        driver = self.computes[hostname].driver
        self.assertIsInstance(driver, slices_driver.LibvirtSlicesDriver)
        return hostname

    # -- what a server got ---------------------------------------------
    def domain(self, server):
        """The server's domain as fakelibvirt holds it."""
        host = server["OS-EXT-SRV-ATTR:host"]
        conn = self.computes[host].driver._host.get_connection()
        dom = conn.lookupByUUIDString(server["id"])
        return etree.fromstring(dom.XMLDesc(0).encode())

    def gpus_of(self, server):
        out = []
        for addr in self.domain(server).iterfind(
            "devices/hostdev[@type='pci']/source/address"
        ):
            out.append(
                "%04x:%02x:%02x.%x"
                % tuple(
                    int(addr.get(k), 0)
                    for k in ("domain", "bus", "slot", "function")
                )
            )
        return sorted(out)

    def mdevs_of(self, server):
        return [
            h
            for h in self.domain(server).iterfind("devices/hostdev")
            if h.get("type") == "mdev"
        ]

    def pins_of(self, server):
        return sorted(
            int(p.get("cpuset"))
            for p in self.domain(server).iterfind("cputune/vcpupin")
        )

    def domains(self, hostname):
        """Every domain fakelibvirt holds on ``hostname``."""
        conn = self.computes[hostname].driver._host.get_connection()
        return conn.listAllDomains(
            fakelibvirt.VIR_CONNECT_LIST_DOMAINS_ACTIVE
            | fakelibvirt.VIR_CONNECT_LIST_DOMAINS_INACTIVE
        )

    def slice_of(self, server):
        """The slice whose token the server's allocation holds."""
        names = self.slice_names(server["OS-EXT-SRV-ATTR:host"])
        allocations = self.placement.get(f"/allocations/{server['id']}").body[
            "allocations"
        ]
        held = [
            names[rp]
            for rp, a in allocations.items()
            if rp in names and a["resources"].get(SLICES[names[rp]][0])
        ]
        self.assertEqual(1, len(held), allocations)
        return held[0]

    def slice_names(self, hostname):
        """{provider uuid: slice name} of a host, from Placement."""
        root = self.compute_rp_uuids[hostname]
        prefix = f"{hostname}_slice_"
        return {
            p["uuid"]: p["name"][len(prefix) :]
            for p in self.placement.get(
                f"/resource_providers?in_tree={root}", version="1.14"
            ).body["resource_providers"]
            if p["name"].startswith(prefix)
        }

    def assert_server_holds_its_slice(self, server):
        """Its domain has exactly its slice template's GPUs and pins."""
        name = self.slice_of(server)
        holds = SLICES[name][2]
        self.assertEqual(holds["gpus"], self.gpus_of(server))
        self.assertEqual(holds["cpus"], self.pins_of(server))
        return name
