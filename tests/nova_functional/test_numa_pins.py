"""``hw:numa_node.N`` inside Nova: the scheduler, the claim and the domain.

A host without slices (LibvirtSlicesDriver is Nova's libvirt driver
there) with 2 sockets x 2 NUMA cells x 3 CPUs, all dedicated.  Guests pin
their cells to host cells in an order Nova's own fitter would never
choose (guest cell 0 on host cell 3); the claim must put them there, in
``instance.numa_topology`` and the domain's ``<numatune>`` and
``<vcpupin>``, and the resource tracker must count the pCPUs on those
cells, so that two pinned guests never share one -- across a restart of
nova-compute and a resize to other pins, too.
"""

import fixtures
from lxml import etree
from nova import context as nova_context
from nova import objects
from nova.tests.functional.libvirt import base as nova_base

from nova_slices.cpuset import parse_cpuset
from tests.nova_functional import base

CPUS_PER_CELL = base.CPUS_PER_CELL
PINS = "cputune/vcpupin"


def cell_cpus(cell):
    return set(range(cell * CPUS_PER_CELL, (cell + 1) * CPUS_PER_CELL))


class PinHostBase(base.SlicesServices, nova_base.ServersTestBase):
    ADMIN_API = True
    microversion = "latest"
    ADDITIONAL_FILTERS = ["NUMATopologyFilter"]

    def setUp(self):
        super().setUp()
        self.ctxt = nova_context.get_admin_context()
        self.flags(
            cpu_dedicated_set="0-11", cpu_shared_set=None, group="compute"
        )
        self.flags(allow_resize_to_same_host=True)
        self.host = self.start_compute(
            hostname="host1", host_info=base.four_cell_host()
        )
        self.written = {}
        self.record_domain_xml()

    # -- what the guest and the host say -------------------------------
    def pinned_flavor(self, vcpus, pins, **extra):
        specs = {"hw:cpu_policy": "dedicated", **extra}
        specs.update({f"hw:numa_node.{g}": str(h) for g, h in pins.items()})
        return self._create_flavor(
            vcpu=vcpus, memory_mb=1024, extra_spec=specs
        )

    def record_domain_xml(self):
        """Keep the domain XML the driver writes, by instance: fakelibvirt
        keeps only part of a definition (not ``<cpu><numa>``)."""
        driver = self.computes[self.host].driver
        write = driver._get_guest_xml

        def recording(context, instance, *args, **kwargs):
            xml = write(context, instance, *args, **kwargs)
            self.written[instance.uuid] = xml
            return xml

        driver._get_guest_xml = recording

    def domain(self, server):
        """The server's last domain XML, checked against what fakelibvirt
        runs: the same vCPU pins."""
        dom = etree.fromstring(self.written[server["id"]].encode())
        conn = self.computes[self.host].driver._host.get_connection()
        running = etree.fromstring(
            conn.lookupByUUIDString(server["id"]).XMLDesc(0).encode()
        )
        self.assertEqual(
            sorted(dict(p.attrib).items() for p in dom.iterfind(PINS)),
            sorted(dict(p.attrib).items() for p in running.iterfind(PINS)),
        )
        return dom

    def domain_cells(self, server):
        """{guest cell: (host node, host CPUs of its vCPUs)} read from
        the domain's XML."""
        dom = self.domain(server)
        node = {
            int(m.get("cellid")): int(m.get("nodeset"))
            for m in dom.iterfind("numatune/memnode")
        }
        pin = {
            int(p.get("vcpu")): parse_cpuset(p.get("cpuset"))
            for p in dom.iterfind("cputune/vcpupin")
        }
        out = {}
        for cell in dom.iterfind("cpu/numa/cell"):
            vcpus = parse_cpuset(cell.get("cpus"))
            held = set().union(*(pin[v] for v in vcpus))
            out[int(cell.get("id"))] = (node[int(cell.get("id"))], held)
        return out

    def claimed_cells(self, server):
        """[(host cell, pinned host CPUs)] of instance.numa_topology,
        in guest-cell order."""
        topology = objects.InstanceNUMATopology.get_by_instance_uuid(
            self.ctxt, server["id"]
        )
        return [(c.id, set(c.cpu_pinning.values())) for c in topology.cells]

    def tracker_pinned(self):
        """{host cell: pinned CPUs} as the resource tracker counts them."""
        node = objects.ComputeNode.get_by_nodename(self.ctxt, self.host)
        topology = objects.NUMATopology.obj_from_db_obj(node.numa_topology)
        return {c.id: set(c.pinned_cpus) for c in topology.cells}

    def assert_on_cells(self, server, host_cells):
        """The claim, the domain and the tracker agree the guest's cells
        are ``host_cells`` (by guest cell) and its pCPUs theirs."""
        claimed = self.claimed_cells(server)
        self.assertEqual(host_cells, [cell for cell, _ in claimed])
        domain = self.domain_cells(server)
        for guest, (cell, cpus) in enumerate(claimed):
            self.assertTrue(cpus <= cell_cpus(cell), (cell, cpus))
            self.assertEqual((cell, cpus), domain[guest])
        return set().union(*(cpus for _, cpus in claimed))


class NUMANodePinTest(PinHostBase):
    def test_pins_hold_from_claim_to_domain_to_usage(self):
        two = self.pinned_flavor(4, {0: 3, 1: 1}, **{"hw:numa_nodes": "2"})
        first = self._create_server(flavor_id=two, networks="none")
        held_first = self.assert_on_cells(first, [3, 1])

        # pins alone make a one-cell guest, as in the core
        one = self.pinned_flavor(1, {0: 3})
        second = self._create_server(flavor_id=one, networks="none")
        held_second = self.assert_on_cells(second, [3])
        self.assertEqual(set(), held_first & held_second)

        usage = self.tracker_pinned()
        self.assertEqual(cell_cpus(3), usage[3])
        self.assertEqual(2, len(usage[1]))
        self.assertEqual(set(), usage[0] | usage[2])
        self.assertEqual(
            held_first | held_second, set().union(*usage.values())
        )

        # host cell 3 is full: the filter refuses a third guest pinned
        # there although cells 0 and 2 are free
        third = self._create_server(
            flavor_id=one, networks="none", expected_state="ERROR"
        )
        self.assertIn("No valid host", third["fault"]["message"])

        # nova-compute rebuilds its usage from instance.numa_topology
        self.restart_compute_service(self.host)
        self.record_domain_xml()
        self.assertEqual(usage, self.tracker_pinned())

        # a resize moves the pins with the new flavor's (the disk copy
        # cannot happen here; Nova's own libvirt move tests stub it)
        self.useFixture(
            fixtures.MockPatch(
                "nova.virt.libvirt.driver.LibvirtDriver"
                ".migrate_disk_and_power_off",
                return_value="{}",
            )
        )
        elsewhere = self.pinned_flavor(1, {0: 2})
        self._resize_server(second, elsewhere)
        self._confirm_resize(second)
        self.assert_on_cells(second, [2])
        usage = self.tracker_pinned()
        self.assertEqual(2, len(usage[3]))
        self.assertEqual(1, len(usage[2]))

        self._delete_server(first)
        self._delete_server(second)
        # Nova itself keeps a guest resized on the same host counted until
        # its periodic audit (measured alike with flavors without pins)
        self._run_periodics()
        self.assertEqual(
            {0: set(), 1: set(), 2: set(), 3: set()}, self.tracker_pinned()
        )

    def test_unpinned_guests_are_placed_by_nova(self):
        """Without a pin the claim is Nova's own: a two-cell guest gets
        two distinct cells, and a later pinned guest avoids its pCPUs."""
        flavor = self._create_flavor(
            vcpu=4,
            memory_mb=1024,
            extra_spec={"hw:cpu_policy": "dedicated", "hw:numa_nodes": "2"},
        )
        plain = self._create_server(flavor_id=flavor, networks="none")
        cells = [cell for cell, _ in self.claimed_cells(plain)]
        self.assertEqual(2, len(set(cells)))
        held = self.assert_on_cells(plain, cells)
        pinned = self._create_server(
            flavor_id=self.pinned_flavor(1, {0: cells[0]}), networks="none"
        )
        self.assertEqual(
            set(), held & self.assert_on_cells(pinned, [cells[0]])
        )


class ClaimWithoutTheFilterTest(PinHostBase):
    """The scheduler runs Nova's own ``NUMATopologyFilter``, which does
    not know the pins: the compute claim alone keeps them."""

    def _setup_scheduler_service(self):
        return nova_base.ServersTestBase._setup_scheduler_service(self)

    def test_the_claim_places_pinned_cells(self):
        flavor = self.pinned_flavor(2, {0: 3, 1: 2}, **{"hw:numa_nodes": "2"})
        server = self._create_server(flavor_id=flavor, networks="none")
        self.assert_on_cells(server, [3, 2])

    def test_the_claim_refuses_a_full_pinned_cell(self):
        full = self.pinned_flavor(CPUS_PER_CELL, {0: 3})
        self._create_server(flavor_id=full, networks="none")
        # Nova's filter sees 9 free pCPUs; the claim sees cell 3 full
        late = self._create_server(
            flavor_id=self.pinned_flavor(1, {0: 3}),
            networks="none",
            expected_state="ERROR",
        )
        self.assertIn("Exhausted all hosts", late["fault"]["message"])
        claims = [
            line
            for line in self.stdlog.logger.output.splitlines()
            if "Failed to claim" in line
        ]
        self.assertEqual(1, len(claims), claims)
        self.assertIn(
            "pinned by hw:numa_node.0=3 cannot fit the given host NUMA "
            "topology: [numa.not-enough-pcpus]",
            claims[0],
        )
        self.assertEqual(cell_cpus(3), self.tracker_pinned()[3])
        self.assertEqual(
            set(), set().union(*self.tracker_pinned().values()) - cell_cpus(3)
        )
