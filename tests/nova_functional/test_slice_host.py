"""A slice host in Nova: real API, scheduler and nova-compute.

Servers from `nova-slices flavor-specs` flavors land on the right slices
with their templates' GPUs and pins, conflicting slices are never given
together, usage survives a nova-compute restart, a hard reboot keeps the
template, and a bad slice_spec (or slices that overlap) stops
nova-compute with its code.
"""

import json

import fixtures
from nova.tests.fixtures import libvirt as fakelibvirt
from nova.tests.functional.api import client
from nova.tests.functional.libvirt import test_vgpu

from nova_slices.nova import filters
from nova_slices.nova.driver import SliceHostInvalid
from nova_slices.slices.tree import HOST_UNITS
from tests.nova_functional import base


class SliceHostTest(base.SliceHostTestBase):
    def test_slice_providers_and_root_inventory(self):
        host = self.start_slice_compute()
        root = self.compute_rp_uuids[host]
        inventory = self.placement.get(
            f"/resource_providers/{root}/inventories"
        ).body["inventories"]
        # the slices own CPUs and memory: the root offers only the
        # instances' disk and one unit per leaf slice
        self.assertEqual({"DISK_GB", HOST_UNITS}, set(inventory))
        self.assertEqual(8, inventory[HOST_UNITS]["total"])
        names = self.slice_names(host)
        self.assertEqual(set(base.SLICES), set(names.values()))
        by_name = {v: k for k, v in names.items()}
        units = self.placement.get(
            f"/resource_providers/{by_name['4_2']}/inventories"
        ).body["inventories"]
        self.assertEqual(1, units[base.FOUR]["total"])
        self.assertEqual(4, units[base.FOUR + "_UNITS"]["total"])

    def test_servers_land_on_slices_that_do_not_conflict(self):
        self.start_slice_compute()
        one = self._create_server(
            flavor_id=self.flavors[base.ONE], networks="none"
        )
        leaf = self.assert_server_holds_its_slice(one)
        four = self._create_server(
            flavor_id=self.flavors[base.FOUR], networks="none"
        )
        big = self.assert_server_holds_its_slice(four)
        self.assertTrue(big.startswith("4_"))
        self.assertNotEqual(base.SLICES[leaf][1], big)  # not its parent
        # every leaf under 8_1 has an ancestor or itself in use
        eight = self._create_server(
            flavor_id=self.flavors[base.EIGHT],
            networks="none",
            expected_state="ERROR",
        )
        self.assertIn("No valid host", eight["fault"]["message"])
        self._delete_server(eight)
        # deleting frees: then the whole host fits one 8-GPU server
        self._delete_server(one)
        self._delete_server(four)
        eight = self._create_server(
            flavor_id=self.flavors[base.EIGHT], networks="none"
        )
        self.assertEqual("8_1", self.assert_server_holds_its_slice(eight))

    def test_eight_one_gpu_servers_fill_the_host(self):
        self.start_slice_compute()
        servers = [
            self._create_server(
                flavor_id=self.flavors[base.ONE], networks="none"
            )
            for _ in range(8)
        ]
        leaves = {self.assert_server_holds_its_slice(s) for s in servers}
        self.assertEqual({f"1_{k}" for k in range(1, 9)}, leaves)
        gpus = [g for s in servers for g in self.gpus_of(s)]
        self.assertEqual(sorted(base.GPUS), sorted(gpus))
        ninth = self._create_server(
            flavor_id=self.flavors[base.ONE],
            networks="none",
            expected_state="ERROR",
        )
        self.assertIn("No valid host", ninth["fault"]["message"])

    def test_restart_keeps_usage_and_hard_reboot_keeps_the_template(self):
        host = self.start_slice_compute()
        server = self._create_server(
            flavor_id=self.flavors[base.FOUR], networks="none"
        )
        name = self.assert_server_holds_its_slice(server)
        root = self.compute_rp_uuids[host]
        before = self.placement.get(f"/resource_providers/{root}/usages")
        self.restart_compute_service(host)
        after = self.placement.get(f"/resource_providers/{root}/usages")
        self.assertEqual(before.body["usages"], after.body["usages"])
        self.assertEqual(4, after.body["usages"][HOST_UNITS])
        self._reboot_server(server, hard=True)
        self.assertEqual(name, self.assert_server_holds_its_slice(server))

    def test_a_bad_slice_spec_stops_nova_compute(self):
        self.flags(
            slice_spec=[
                '{"name": "a", "resource_class": "CUSTOM_A", '
                '"template_file": "slice_1_1.xml.j2", '
                '"conflict_parent": "nope"}'
            ],
            group="libvirt",
        )
        error = self.assertRaises(SliceHostInvalid, self.start_slice_compute)
        self.assertEqual(["config.slice-unknown-parent"], error.codes)
        self.assertIn("[config.slice-unknown-parent]", str(error))

    def test_a_template_that_does_not_fit_the_host_stops_it(self):
        path = f"{self.template_dir}/slice_1_8.xml.j2"
        with open(path) as f:
            text = f.read()
        with open(path, "w") as f:
            f.write(text.replace("0000:81:07.0", "0000:99:00.0"))
        error = self.assertRaises(SliceHostInvalid, self.start_slice_compute)
        self.assertEqual(["template.host-mismatch"], error.codes)
        self.assertIn("0000:99:00.0", str(error))

    def test_two_slices_that_overlap_stop_nova_compute(self):
        """1_2's template holds 1_1's GPU and CPU: two servers would get
        them, so nova-compute does not start."""
        with open(f"{self.template_dir}/slice_1_2.xml.j2", "w") as f:
            f.write(base.slice_template(base.leaf(1)))
        error = self.assertRaises(SliceHostInvalid, self.start_slice_compute)
        self.assertEqual(
            ["slice.overlap-device", "slice.overlap-cpu"], error.codes
        )
        self.assertIn(
            "[slice.overlap-device] [libvirt] slice_spec: slices 1_1 and 1_2",
            str(error),
        )
        self.assertIn(f"PCI device {base.GPUS[0]}", str(error))

    def test_template_gpu_also_in_pci_device_spec_stops_nova_compute(self):
        """Nova's PCI tracker would hand out a GPU that slice templates
        hold: nova-compute does not start."""
        # by ids, as an operator would write it (an address spec makes
        # Nova look at sysfs, which the harness forbids)
        self.flags(
            device_spec=[
                json.dumps(
                    {
                        "vendor_id": fakelibvirt.PCI_VEND_ID,
                        "product_id": fakelibvirt.PCI_PROD_ID,
                    }
                )
            ],
            group="pci",
        )
        error = self.assertRaises(SliceHostInvalid, self.start_slice_compute)
        self.assertEqual({"slice.device-also-offered"}, set(error.codes))
        self.assertIn(
            f"holds PCI device {base.GPUS[0]}, which Placement also hands out",
            str(error),
        )
        self.assertIn("[pci] device_spec", str(error))


class TwoSliceHostsTest(base.SliceHostTestBase):
    def test_two_hosts_filled_then_refused(self):
        hosts = {self.start_slice_compute(h) for h in ("slice1", "slice2")}
        eights = [
            self._create_server(
                flavor_id=self.flavors[base.EIGHT], networks="none"
            )
            for _ in hosts
        ]
        self.assertEqual(hosts, {s["OS-EXT-SRV-ATTR:host"] for s in eights})
        for server in eights:
            self.assertEqual("8_1", self.assert_server_holds_its_slice(server))
        third = self._create_server(
            flavor_id=self.flavors[base.ONE],
            networks="none",
            expected_state="ERROR",
        )
        self.assertIn("No valid host", third["fault"]["message"])

    def test_a_claim_that_wins_the_race_is_never_shared(self):
        """A rival takes the whole host (slice 8_1) in Placement after the
        scheduler read its candidates and before it claims one: the
        scheduler's claim gets a conflict, the server is refused, and no
        domain holds a GPU the rival holds."""
        host = self.start_slice_compute()
        root = self.compute_rp_uuids[host]
        by_name = {v: k for k, v in self.slice_names(host).items()}
        rival = "00000000-0000-4000-8000-00000000beef"
        real = filters.SliceChainFilter.host_passes

        def racing(filter_self, host_state, spec_obj):
            kept = real(filter_self, host_state, spec_obj)
            if not self.placement.get(f"/allocations/{rival}").body[
                "allocations"
            ]:
                resp = self.placement.put(
                    f"/allocations/{rival}",
                    {
                        "allocations": {
                            root: {"resources": {HOST_UNITS: 8}},
                            by_name["8_1"]: {
                                "resources": {
                                    base.EIGHT: 1,
                                    base.EIGHT + "_UNITS": 8,
                                }
                            },
                        },
                        "project_id": "rival",
                        "user_id": "rival",
                        "consumer_generation": None,
                        "consumer_type": "INSTANCE",
                    },
                    version="1.38",
                )
                self.assertEqual(204, resp.status, resp.body)
            return kept

        self.stub_out(
            "nova_slices.nova.filters.SliceChainFilter.host_passes", racing
        )
        server = self._create_server(
            flavor_id=self.flavors[base.FOUR],
            networks="none",
            expected_state="ERROR",
        )
        self.assertIn("No valid host", server["fault"]["message"])
        usages = self.placement.get(f"/resource_providers/{root}/usages").body[
            "usages"
        ]
        self.assertEqual(8, usages[HOST_UNITS])  # the rival's alone
        self.assertEqual([], self.domains(host))


class SliceMovesTest(base.SliceHostTestBase):
    """Moves between two slice hosts: the destination's allocation names
    the slice and its template is rendered there; a live migration,
    which would carry the source's GPUs over, is refused."""

    def setUp(self):
        super().setUp()
        self.hosts = [self.start_slice_compute(h) for h in ("src", "dst")]
        # the disk copy between hosts cannot happen here; Nova's own
        # libvirt move tests stub the same seam
        self.useFixture(
            fixtures.MockPatch(
                "nova.virt.libvirt.driver.LibvirtDriver"
                ".migrate_disk_and_power_off",
                return_value="{}",
            )
        )

    def test_cold_migration_renders_the_destinations_slice(self):
        server = self._create_server(
            flavor_id=self.flavors[base.FOUR], networks="none"
        )
        source = server["OS-EXT-SRV-ATTR:host"]
        server = self._migrate_server(server)
        self.assertNotEqual(source, server["OS-EXT-SRV-ATTR:host"])
        self.assertTrue(self.assert_server_holds_its_slice(server)[:2] == "4_")
        server = self._confirm_resize(server)
        root = self.compute_rp_uuids[source]
        usages = self.placement.get(f"/resource_providers/{root}/usages").body[
            "usages"
        ]
        # the source's slice is free again (its domain is not checked: the
        # stubbed disk copy is what powers it off)
        self.assertEqual(0, usages[HOST_UNITS])

    def test_resize_to_a_bigger_slice_class(self):
        server = self._create_server(
            flavor_id=self.flavors[base.ONE], networks="none"
        )
        server = self._resize_server(server, self.flavors[base.FOUR])
        self.assertTrue(self.assert_server_holds_its_slice(server)[:2] == "4_")
        server = self._confirm_resize(server)
        self.assertEqual(4, len(self.gpus_of(server)))

    def test_evacuation_renders_the_destinations_slice(self):
        server = self._create_server(
            flavor_id=self.flavors[base.ONE], networks="none"
        )
        source = server["OS-EXT-SRV-ATTR:host"]
        self.api.put_service(
            self.computes[source].service_ref.uuid, {"forced_down": True}
        )
        self.computes[source].stop()
        # since microversion 2.95 an evacuated server stays stopped
        server = self._evacuate_server(server, expected_state="SHUTOFF")
        self.assertNotEqual(source, server["OS-EXT-SRV-ATTR:host"])
        name = self.assert_server_holds_its_slice(server)
        self.assertTrue(name.startswith("1_"))
        # powering on (a hard reboot of the domain) keeps the template
        server = self._start_server(server)
        self.assertEqual(name, self.assert_server_holds_its_slice(server))

    def test_live_migration_is_refused_and_nothing_moves(self):
        server = self._create_server(
            flavor_id=self.flavors[base.FOUR], networks="none"
        )
        source = server["OS-EXT-SRV-ATTR:host"]
        name = self.assert_server_holds_its_slice(server)
        try:
            self.api.post_server_action(
                server["id"],
                {"os-migrateLive": {"host": None, "block_migration": "auto"}},
            )
        except client.OpenStackApiException as exc:
            # the harness makes the conductor's cast a call, so the
            # conductor's final NoValidHost reaches the API here
            self.assertIn("NoValidHost", str(exc))
        self._wait_for_migration_status(server, ["error"])
        actions = self.api.get_instance_actions(server["id"])
        live = next(a for a in actions if a["action"] == "live-migration")
        details = self.api.get_instance_action_details(
            server["id"], live["request_id"]
        )
        tracebacks = " ".join(
            (e.get("details") or "") + (e.get("traceback") or "")
            for e in details["events"]
        )
        self.assertIn("a slice guest cannot be live-migrated", tracebacks)
        server = self._wait_for_state_change(server, "ACTIVE")
        self.assertEqual(source, server["OS-EXT-SRV-ATTR:host"])
        self.assertEqual(name, self.assert_server_holds_its_slice(server))
        other = next(h for h in self.hosts if h != source)
        usages = self.placement.get(
            f"/resource_providers/{self.compute_rp_uuids[other]}/usages"
        ).body["usages"]
        self.assertEqual(0, usages[HOST_UNITS])


class SliceWithNovaVGPUTest(base.SliceHostTestBase, test_vgpu.VGPUTestBase):
    """A vGPU next to a slice: Nova reports the vGPU provider (nothing
    twice), allocates and creates the mdev (through the seam Nova's own
    vGPU tests stub: the kernel's mdev sysfs), and the slice guest's
    domain gets it next to the template's GPUs."""

    def test_slice_flavor_with_a_vgpu(self):
        self.flags(
            enabled_mdev_types=fakelibvirt.NVIDIA_11_VGPU_TYPE,
            group="devices",
        )
        host = self.start_slice_compute("host1", mdev_capable=1)
        root = self.compute_rp_uuids[host]
        tree = self.placement.get(
            f"/resource_providers?in_tree={root}", version="1.14"
        ).body["resource_providers"]
        vgpu = [
            p
            for p in tree
            if "VGPU"
            in self.placement.get(
                f"/resource_providers/{p['uuid']}/inventories"
            ).body["inventories"]
        ]
        self.assertEqual(1, len(vgpu))  # Nova's own, reported once
        specs = dict(
            self.api.get_flavor(self.flavors[base.FOUR])["extra_specs"]
        )
        specs["resources_GPU:VGPU"] = "1"
        flavor = self._create_flavor(
            name="four-and-a-vgpu",
            vcpu=1,
            memory_mb=512,
            disk=1,
            ephemeral=0,
            extra_spec=specs,
        )
        server = self._create_server(flavor_id=flavor, networks="none")
        self.assertTrue(self.assert_server_holds_its_slice(server)[:2] == "4_")
        self.assertEqual(1, len(self.mdevs_of(server)))
        usage = self.placement.get(
            f"/resource_providers/{vgpu[0]['uuid']}/usages"
        ).body["usages"]
        self.assertEqual(1, usage["VGPU"])
