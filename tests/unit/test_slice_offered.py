"""A slice template holding a device Placement also hands out is refused."""

import pytest

from nova_slices.devices.binding import DeviceProviderInfo
from nova_slices.host.devices import TYPE_PF, TYPE_VF, PciDevice
from nova_slices.slices.offered import check_offered_devices, device_offers
from nova_slices.virt.holdings import Holdings

GPU = "0000:17:00.0"
T4 = "0000:86:00.0"
PF = "0000:3b:00.0"
VF1, VF2 = "0000:3b:00.2", "0000:3b:00.3"
OTHER = "0000:31:00.0"

DEVICES = {
    d.address: d
    for d in (
        PciDevice(GPU, "10de", "20b5"),
        PciDevice(OTHER, "10de", "20b5"),
        PciDevice(T4, "10de", "1eb8"),
        PciDevice(
            PF, "15b3", "101b", dev_type=TYPE_PF, vf_addresses=(VF1, VF2)
        ),
        PciDevice(VF1, "15b3", "101c", dev_type=TYPE_VF, parent_address=PF),
        PciDevice(VF2, "15b3", "101c", dev_type=TYPE_VF, parent_address=PF),
    )
}
INDEX = {
    "rp-gpu": DeviceProviderInfo("pci", GPU, "CUSTOM_A100"),
    "rp-t4": DeviceProviderInfo("mdev", T4, "VGPU", "nvidia-222"),
    "rp-vfs": DeviceProviderInfo("vfs", PF, "CUSTOM_NIC_VF", None, (VF1, VF2)),
}
SPEC = "[pci] device_spec"

CASES = [
    # (id, held PCI addresses, [(device, offered, class, option)])
    ("nothing offered held", {OTHER}, []),
    ("a GPU [pci] offers", {GPU}, [(GPU, GPU, "CUSTOM_A100", SPEC)]),
    (
        "an mdev parent",
        {T4},
        [(T4, T4, "VGPU", "[mdev_nvidia-222] device_addresses")],
    ),
    ("an offered VF", {VF2}, [(VF2, VF2, "CUSTOM_NIC_VF", SPEC)]),
    ("the PF of offered VFs", {PF}, [(PF, VF1, "CUSTOM_NIC_VF", SPEC)]),
    (
        "two at once, in address order",
        {OTHER, T4, GPU},
        [
            (GPU, GPU, "CUSTOM_A100", SPEC),
            (T4, T4, "VGPU", "[mdev_nvidia-222] device_addresses"),
        ],
    ),
]


@pytest.mark.parametrize(
    "held,expected", [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_template_devices_against_offered(held, expected):
    offers = device_offers(INDEX, DEVICES)
    problems = check_offered_devices(
        {"1_1": Holdings(pci=frozenset(held))}, offers
    )
    assert [
        (
            p.value["device"],
            p.value["offered"],
            p.value["resource_class"],
            p.value["option"],
        )
        for p in problems
    ] == expected
    for p in problems:
        assert p.code == "slice.device-also-offered"
        assert p.key == "[libvirt] slice_spec"
        assert p.value["slices"] == ["1_1"]
        assert "1_1" in p.message and p.value["device"] in p.message
        assert p.value["option"] in p.message


def test_tied_device_is_named_in_the_message():
    offers = device_offers(INDEX, DEVICES)
    [problem] = check_offered_devices(
        {"4_1": Holdings(pci=frozenset({PF}))}, offers
    )
    assert f"through {VF1}, which is tied to it" in problem.message


def test_no_device_providers_nothing_offered():
    assert device_offers({}, DEVICES) == {}
    assert (
        check_offered_devices({"1_1": Holdings(pci=frozenset({GPU}))}, {})
        == ()
    )
