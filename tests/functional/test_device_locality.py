"""Devices next to a slice come from its cell, then its socket, then
anywhere; with ``hw:pci_numa_affinity_policy`` the rule refuses.

Real parts: libvirt's test driver on the shipped gpu8-2s bundle plus a
second ConnectX-6 (one VF) and a second T4 (one vGPU) on cell 1, the real
Placement service and mdev backend; only the kernel's sysfs is a stand-in.
The slice's cells come from its rendered template (1_3 and 1_4 pin cell
1, socket 0; 1_5 cell 2, socket 1).  Guests without devices fill 1_1 and
1_2 first, so the next 1-GPU guest lands on cell 1.
"""

import os
import pathlib
import re
import shutil

import pytest

from nova_slices import data
from nova_slices.cmd.runtime import Runtime
from nova_slices.host.capabilities import parse_capabilities
from nova_slices.host.devices import parse_node_devices, split_node_file
from tests.fixtures.fake_sysfs import FakeSysfs
from tests.functional.conftest import BUNDLE_CONF, make_conf
from tests.functional.test_device_binding import spawn

ONE_GPU = "CUSTOM_SLICE_1_GPU_V1"
VF = ("--extra-spec", "resources_NIC:CUSTOM_NIC_VF=1")
VGPU = ("--extra-spec", "resources_GPU:VGPU=1")
NIC_A, NIC_B = "0000:3b:00.0", "0000:5e:00.0"  # cells 0 and 1
T4_A, T4_B = "0000:86:00.0", "0000:af:00.0"  # cells 2 and 1


def policy(name):
    return ("--extra-spec", f"hw:pci_numa_affinity_policy={name}")


def _pci(address, comment, body, node, group):
    _, bus, rest = address.split(":")
    slot, function = rest.split(".")
    where = f"bus='0x{bus}' slot='0x{slot}' function='0x{function}'"
    return f"""  <!-- {comment} -->
  <device>
    <name>pci_{address.replace(":", "_").replace(".", "_")}</name>
    <parent>computer</parent>
    <capability type='pci'>
      <domain>0</domain>
      <bus>{int(bus, 16)}</bus>
      <slot>{int(slot, 16)}</slot>
      <function>{int(function, 16)}</function>
{body}
      <iommuGroup number='{group}'>
        <address domain='0x0000' {where}/>
      </iommuGroup>
      <numa node='{node}'/>
    </capability>
  </device>
"""


# a second NIC (PF + one VF) and a second T4 (one vGPU), both on cell 1
CELL_1_DEVICES = (
    _pci(
        NIC_B,
        "ConnectX-6 PF on cell 1",
        """      <product id='0x101b'>MT28908 Family [ConnectX-6]</product>
      <vendor id='0x15b3'>Mellanox Technologies</vendor>
      <capability type='virt_functions' maxCount='1'>
        <address domain='0x0000' bus='0x5e' slot='0x00' function='0x2'/>
      </capability>""",
        1,
        300,
    )
    + _pci(
        "0000:5e:00.2",
        "its VF",
        """      <product id='0x101c'>MT28908 Family [ConnectX-6 VF]</product>
      <vendor id='0x15b3'>Mellanox Technologies</vendor>
      <capability type='phys_function'>
        <address domain='0x0000' bus='0x5e' slot='0x00' function='0x0'/>
      </capability>""",
        1,
        301,
    )
    + _pci(
        T4_B,
        "T4 on cell 1, room for one vGPU",
        """      <product id='0x1eb8'>TU104GL [Tesla T4]</product>
      <vendor id='0x10de'>NVIDIA Corporation</vendor>
      <capability type='mdev_types'>
        <type id='nvidia-222'>
          <name>GRID T4-1B</name>
          <deviceAPI>vfio-pci</deviceAPI>
          <availableInstances>1</availableInstances>
        </type>
      </capability>""",
        1,
        302,
    )
)


def make_bundle(root, cell_3_socket=True):
    """gpu8-2s with the cell-1 devices; without socket ids on cell 3's
    CPUs when ``cell_3_socket`` is False."""
    bundle = root / "gpu8-2s"
    shutil.copytree(data.host_bundle(), bundle)
    node = bundle / "node.xml"
    node.write_text(
        node.read_text().replace("</node>", CELL_1_DEVICES + "</node>")
    )
    if not cell_3_socket:
        caps = bundle / "capabilities.xml"
        text = caps.read_text()
        start = text.index("<cell id='3'>")
        end = text.index("</cell>", start)
        cell = re.sub(r" socket_id='1'", "", text[start:end])
        caps.write_text(text[:start] + cell + text[end:])
    return bundle


def bundle_devices(bundle):
    with open(bundle / "node.xml") as f:
        docs = split_node_file(f.read())
    with open(bundle / "capabilities.xml") as f:
        topology = parse_capabilities(f.read())
    return parse_node_devices(docs, topology)


def host(tmp_path, cell_3_socket=True):
    """Config files for the bundle, and the stand-in kernel to start."""
    bundle = make_bundle(tmp_path, cell_3_socket)
    kernel = FakeSysfs.like_host(tmp_path / "sys", bundle_devices(bundle))
    extra = tmp_path / "locality.conf"
    extra.write_text(
        f"[libvirt]\nhost_bundle = {bundle}\n"
        f"[devices]\nmdev_sysfs_root = {kernel.root}\n"
        f"[mdev_nvidia-222]\ndevice_addresses = {T4_A},{T4_B}\n"
    )
    return [BUNDLE_CONF, str(extra)], kernel


@pytest.fixture
def config(tmp_path):
    config, kernel = host(tmp_path)
    with kernel:
        yield config


def fill_cell_0(cli, config):
    """Two guests without devices on 1_1 and 1_2 (cell 0)."""
    for name, expected in (("plain1", "1_1"), ("plain2", "1_2")):
        status, out, err = spawn(cli, config, name)
        assert (status, out["slice"]) == (0, expected), err
        assert "device_locality" not in out


def spawned(cli, config, name, slice_name, *extra):
    """Spawn, check the slice, return the output and its one device."""
    status, out, err = spawn(cli, config, name, *extra)
    assert (status, out["slice"]) == (0, slice_name), err
    return out, only_device(out)


def only_device(out):
    [device] = out["device_locality"]["devices"]
    return device


def test_the_slice_cells_come_from_the_shipped_templates(state_path, config):
    with Runtime(make_conf(state_path, config_files=config)) as rt:
        got = {
            name: sorted(rt.driver.slice_locality(name).cells)
            for name in rt.driver.tree.slices
        }
    assert got == {
        "8_1": [0, 1, 2, 3],
        "4_1": [0, 1],
        "4_2": [2, 3],
        **{f"1_{i}": [(i - 1) // 2] for i in range(1, 9)},
    }


def test_a_vf_from_the_cell_then_the_socket_then_anywhere(cli, config):
    fill_cell_0(cli, config)
    status, out, err = spawn(cli, config, "g3", *VF)
    assert status == 0, err
    assert out["slice"] == "1_3"
    locality = out["device_locality"]
    assert (locality["slice_cells"], locality["slice_sockets"]) == ([1], [0])
    assert locality["policy"] is None
    device = only_device(out)
    assert device["provider"] in out["allocations"]
    assert {k: v for k, v in device.items() if k != "provider"} == {
        "resource_class": "CUSTOM_NIC_VF",
        "amount": 1,
        "device": NIC_B,
        "numa_node": 1,
        "socket": 0,
        "locality": "cell",
        "reason": "on the slice's cell 1",
        "bound": ["0000:5e:00.2"],
    }
    assert out["devices"] == {"pci": ["0000:5e:00.2"], "mdevs": []}

    # cell 1's only VF is taken: its socket's NIC, on cell 0
    out, device = spawned(cli, config, "g4", "1_4", *VF)
    assert (device["device"], device["numa_node"], device["locality"]) == (
        NIC_A,
        0,
        "socket",
    )
    assert device["reason"] == "on its socket 0, none free on cell 1"
    assert device["bound"] == out["devices"]["pci"]

    # socket 0's slices are full; slice 1_5 on cell 2 (socket 1) has no
    # NIC on its socket
    out, device = spawned(cli, config, "g5", "1_5", *VF)
    assert (device["device"], device["locality"]) == (NIC_A, "elsewhere")
    assert device["reason"] == "elsewhere: none free on socket 1"

    status, out, _ = cli("list", "--format", "json", config=config)
    assert out["discrepancies"] == []
    assert "device_locality" not in out["guests"][0]


def test_a_vgpu_from_the_cell_then_anywhere(cli, config):
    fill_cell_0(cli, config)
    out, device = spawned(cli, config, "g3", "1_3", *VGPU)
    assert (device["device"], device["locality"], device["reason"]) == (
        T4_B,
        "cell",
        "on the slice's cell 1",
    )
    assert device["bound"] == out["devices"]["mdevs"]
    # T4_B's one vGPU is taken; T4_A is on socket 1
    out, device = spawned(cli, config, "g4", "1_4", *VGPU)
    assert (device["device"], device["numa_node"], device["socket"]) == (
        T4_A,
        2,
        1,
    )
    assert device["reason"] == "elsewhere: none free on socket 0"


def test_on_a_fresh_host_locality_picks_among_equal_slices(cli, config):
    """No slice is in use: a vGPU guest goes to the first slice with a
    vGPU on its own cell (1_3), not to 1_1 on cell 0, which has none."""
    status, out, err = spawn(cli, config, "g1", *VGPU)
    assert (status, out["slice"]) == (0, "1_3"), err
    assert only_device(out)["locality"] == "cell"
    # a guest without devices still fills the partly used 4-GPU slice
    status, out, err = spawn(cli, config, "g2")
    assert (status, out["slice"]) == (0, "1_1"), err


def test_text_output_explains_the_choice(cli, config):
    fill_cell_0(cli, config)
    status, out, err = cli(
        "spawn", "g3", "--slice-class", ONE_GPU, *VF, config=config
    )
    assert status == 0, err
    assert (
        "  CUSTOM_NIC_VF 0000:5e:00.2 (0000:5e:00.0, cell 1): on the "
        "slice's cell 1" in out.splitlines()
    )


def test_required_and_socket_policies_refuse(cli, config):
    fill_cell_0(cli, config)
    status, out, err = spawn(cli, config, "g3", *VF, *policy("required"))
    assert status == 0, err
    assert only_device(out)["device"] == NIC_B
    assert out["device_locality"]["policy"] == "required"

    # cell 1's VF is gone; every free 1-GPU slice would get a VF off its
    # cells: refused, not ranked
    status, out, err = spawn(cli, config, "g4", *VF, *policy("required"))
    assert status == 1, out
    [error] = out["errors"]
    assert (error["code"], error["key"], error["value"]) == (
        "pci.no-device-on-cell",
        "hw:pci_numa_affinity_policy",
        "required",
    )
    assert "1_4 (cell 1)" in error["message"]
    assert "CUSTOM_NIC_VF free on cell 0" in error["message"]
    assert {"slice": "1_4", "reason": "free"} in out["reasons"]

    # the socket policy takes cell 0's VF for slice 1_4 (socket 0)
    status, out, err = spawn(cli, config, "g4", *VF, *policy("socket"))
    assert (status, out["slice"]) == (0, "1_4"), err
    assert only_device(out)["locality"] == "socket"

    # socket 1's slices have no NIC on their socket
    status, out, err = spawn(cli, config, "g5", *VF, *policy("socket"))
    assert status == 1, out
    assert out["errors"][0]["code"] == "pci.no-device-on-socket"

    # nothing was left allocated by the refusals
    status, out, _ = cli("list", "--format", "json", config=config)
    assert sorted(g["name"] for g in out["guests"]) == [
        "g3",
        "g4",
        "plain1",
        "plain2",
    ]
    assert out["discrepancies"] == []


def test_required_moves_the_guest_to_a_slice_with_a_local_device(cli, config):
    """On a fresh host, the packing order's first slice (1_1, cell 0) has
    no vGPU on its cell; ``required`` takes 1_3, which has."""
    status, out, err = spawn(cli, config, "g1", *VGPU, *policy("required"))
    assert (status, out["slice"]) == (0, "1_3"), err
    assert only_device(out)["device"] == T4_B


def test_a_policy_spec_is_checked(cli, config):
    status, out, _ = spawn(cli, config, "g", *VF, *policy("nearby"))
    assert status == 2
    [error] = out["errors"]
    assert error["code"] == "request.pci-numa-policy-invalid"
    assert error["key"] == "hw:pci_numa_affinity_policy"


def test_socket_policy_on_a_host_with_a_socketless_cell(cli, tmp_path):
    """Cell 3's CPUs lack socket ids: as in Nova, the socket policy takes
    only devices on the slice's own cells, and says which cell is why."""
    config, kernel = host(tmp_path, cell_3_socket=False)
    with kernel:
        status, out, err = cli("topology", "--format", "json", config=config)
        assert [c["socket"] for c in out["cells"]] == [0, 0, 1, None]
        fill_cell_0(cli, config)
        status, out, err = spawn(cli, config, "g3", *VF, *policy("socket"))
        assert (status, out["slice"]) == (0, "1_3"), err
        assert out["device_locality"]["slice_sockets"] is None
        assert only_device(out)["device"] == NIC_B
        status, out, err = spawn(cli, config, "g4", *VF, *policy("socket"))
        assert status == 1, out
        [error] = out["errors"]
        assert error["code"] == "pci.socket-unknown"
        assert "host cell 3 has no socket" in error["message"]
        # without a policy the VF is still given, and the reason says why
        # it is not counted as on the slice's socket
        status, out, err = spawn(cli, config, "g4", *VF)
        assert status == 0, err
        assert only_device(out)["reason"] == (
            "elsewhere: none free on cell 1, and the host's socket data is "
            "partial (cell 3 without a socket)"
        )


def test_bundle_copy_is_the_shipped_one_plus_cell_1_devices(tmp_path):
    bundle = make_bundle(tmp_path)
    devices = bundle_devices(bundle).by_address()
    assert {a: devices[a].numa_node for a in (NIC_B, T4_B)} == {
        NIC_B: 1,
        T4_B: 1,
    }
    assert devices["0000:5e:00.2"].parent_address == NIC_B
    assert os.path.exists(bundle / "capabilities.xml")


def test_on_the_shipped_bundle_packing_first_then_locality(cli, tmp_path):
    """The shipped gpu8-2s as it is (the NIC on cell 0, the T4 on cell
    2): a vGPU guest on a fresh host takes 1_5, beside the T4; a VF guest
    then fills 4_2 (packing comes first) and is told why its VF is far."""
    shipped = pathlib.Path(data.host_bundle())
    with FakeSysfs.like_host(
        tmp_path / "sys", bundle_devices(shipped)
    ) as kernel:
        extra = tmp_path / "sysfs.conf"
        extra.write_text(f"[devices]\nmdev_sysfs_root = {kernel.root}\n")
        config = [BUNDLE_CONF, str(extra)]
        out, device = spawned(cli, config, "g1", "1_5", *VGPU)
        assert (device["device"], device["reason"]) == (
            T4_A,
            "on the slice's cell 2",
        )
        out, device = spawned(cli, config, "g2", "1_6", *VF)
        assert (device["device"], device["reason"]) == (
            NIC_A,
            "elsewhere: none free on socket 1",
        )
