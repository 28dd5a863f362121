"""[pci] device_spec parsing and matching, on the shipped host's devices."""

import os

import pytest

from nova_slices import data
from nova_slices.devices.pci_spec import assignable, parse_device_specs
from nova_slices.errors import ConfigError
from nova_slices.host.devices import parse_node_devices, split_node_file

with open(os.path.join(data.host_bundle(), "node.xml")) as f:
    DEVICES = parse_node_devices(split_node_file(f.read()))


def matched(*specs):
    return [
        d.address for d, _ in assignable(parse_device_specs(specs), DEVICES)
    ]


@pytest.mark.parametrize(
    "spec,expected",
    [
        (
            '{"vendor_id": "10de", "product_id": "20b5"}',
            [
                "0000:17:00.0",
                "0000:31:00.0",
                "0000:4b:00.0",
                "0000:65:00.0",
                "0000:98:00.0",
                "0000:b1:00.0",
                "0000:ca:00.0",
                "0000:e3:00.0",
            ],
        ),
        (
            '{"address": "0000:3b:00.*", "vendor_id": "15b3", '
            '"product_id": "101c"}',
            [
                "0000:3b:00.2",
                "0000:3b:00.3",
                "0000:3b:00.4",
                "0000:3b:00.5",
                "0000:3b:00.6",
                "0000:3b:00.7",
            ],
        ),
        ('{"address": "3b:01.1"}', ["0000:3b:01.1"]),
        ('{"address": "*:17:*.*"}', ["0000:17:00.0"]),
        (
            '{"address": {"bus": "(ca|e3)", "function": "0"}}',
            ["0000:ca:00.0", "0000:e3:00.0"],
        ),
        (
            '[{"address": "0000:17:00.0"}, {"address": "0000:31:00.0"}]',
            ["0000:17:00.0", "0000:31:00.0"],
        ),
    ],
)
def test_matching(spec, expected):
    assert matched(spec) == expected


def test_default_class_and_traits():
    [(device, spec)] = assignable(
        parse_device_specs(
            ['{"address": "0000:17:00.0", "traits": "gpu_a100, HW_NIC_SRIOV"}']
        ),
        DEVICES,
    )
    assert spec.class_for(device) == "CUSTOM_PCI_10DE_20B5"
    # a standard trait stays as it is; others become custom
    assert spec.traits == ("CUSTOM_GPU_A100", "HW_NIC_SRIOV")
    [(device, spec)] = assignable(
        parse_device_specs(
            ['{"address": "0000:17:00.0", "resource_class": "gpu"}']
        ),
        DEVICES,
    )
    assert spec.class_for(device) == "CUSTOM_GPU"


def test_first_matching_spec_decides():
    specs = parse_device_specs(
        [
            '{"address": "0000:17:00.0", "resource_class": "first"}',
            '{"vendor_id": "10de", "resource_class": "second"}',
        ]
    )
    classes = {
        d.address: s.class_for(d) for d, s in assignable(specs, DEVICES)
    }
    assert classes["0000:17:00.0"] == "CUSTOM_FIRST"
    assert classes["0000:31:00.0"] == "CUSTOM_SECOND"


INVALID = "config.pci-device-spec-invalid"
DEVNAME = "config.pci-device-spec-devname"
LONG = "X" * 300

# (value, code, words of the message besides the option and the value)
BAD_SPECS = [
    ("{not json", INVALID, "not JSON"),
    ('"a string"', INVALID, "JSON object"),
    ('{"adress": "0000:17:00.0"}', INVALID, "unknown key"),
    ('{"vendor_id": "10de", "vendor_id": "15b3"}', INVALID, "twice"),
    # addresses Nova's devspec refuses: not hex, or beyond the PCI limits
    ('{"address": "0000:zz:00.0"}', INVALID, "bus 'zz'"),
    ('{"address": "1:2:3:4.5"}', INVALID, "too many"),
    ('{"address": "0000:3b:20.0"}', INVALID, "slot '20'"),
    ('{"address": "0000:3b:00.8"}', INVALID, "function '8'"),
    ('{"address": "0000:100:00.0"}', INVALID, "bus '100'"),
    ('{"address": "10000:3b:00.0"}', INVALID, "domain '10000'"),
    ('{"address": "3b:0x1.0"}', INVALID, "slot '0x1'"),
    ('{"address": "0000:3b:00.1.2"}', INVALID, "function '1.2'"),
    ('{"address": {"bus": "("}}', INVALID, "regex"),
    ('{"address": {"bus": 17}}', INVALID, "regular expression string"),
    ('{"address": {"bsu": "17"}}', INVALID, "address keys"),
    ('{"address": 17}', INVALID, "glob string"),
    # ids: hex strings of up to 4 digits, as Nova parses them
    ('{"vendor_id": "nvidia"}', INVALID, "vendor_id"),
    ('{"vendor_id": "10de0"}', INVALID, "4-digit hex"),
    ('{"product_id": "0x1g"}', INVALID, "product_id"),
    ('{"vendor_id": 4318}', INVALID, "must be a string"),
    # tags of the wrong JSON type
    ('{"physical_network": 7}', INVALID, "physical_network 7 must be a"),
    ('{"physical_network": ["a"]}', INVALID, "must be a string"),
    ('{"traits": ["HW_NIC_SRIOV"]}', INVALID, "traits"),
    ('{"resource_class": 5}', INVALID, "resource_class 5 must be a"),
    ('{"managed": "maybe"}', INVALID, "boolean"),
    ('{"remote_managed": "sometimes"}', INVALID, "boolean"),
    # names Placement would refuse
    ('{"resource_class": "gpu-large"}', INVALID, "resource_class"),
    ('{"resource_class": "CUSTOM_GPU\\n"}', INVALID, "must match"),
    ('{"resource_class": " gpu"}', INVALID, "must match"),
    (f'{{"resource_class": "{LONG}"}}', INVALID, "at most 255"),
    ('{"traits": "fast-nic"}', INVALID, "trait"),
    (f'{{"traits": "{LONG}"}}', INVALID, "at most 255"),
    # a netdev name we cannot resolve: ignored, it would match everything
    ('{"devname": "eth3"}', DEVNAME, "address"),
    ('{"devname": "eth3", "address": "0000:3b:00.2"}', DEVNAME, "eth3"),
]


@pytest.mark.parametrize(
    "raw,code,words", BAD_SPECS, ids=[r[0][:40] for r in BAD_SPECS]
)
def test_bad_specs(raw, code, words):
    with pytest.raises(ConfigError) as info:
        parse_device_specs([raw])
    err = info.value
    assert (err.code, err.key, err.value) == (code, "[pci] device_spec", raw)
    assert err.message.startswith(f"[pci] device_spec = {raw}: ")
    assert words in err.message
    assert "\n" not in err.message  # one line


def test_lenient_forms_nova_accepts():
    """Short ids, empty address parts and boolean tags, as in Nova."""
    [spec] = parse_device_specs(
        [
            '{"vendor_id": "0x15B3", "product_id": "101c", "address": '
            '":00.", "managed": "yes", "remote_managed": false}'
        ]
    )
    assert (spec.vendor_id, spec.product_id) == ("15b3", "101c")
    assert [d.address for d, _ in assignable((spec,), DEVICES)] == [
        "0000:3b:00.2",
        "0000:3b:00.3",
        "0000:3b:00.4",
        "0000:3b:00.5",
        "0000:3b:00.6",
        "0000:3b:00.7",
    ]
