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


@pytest.mark.parametrize(
    "raw,words",
    [
        ("{not json", "not JSON"),
        ('"a string"', "JSON object"),
        ('{"adress": "0000:17:00.0"}', "unknown key"),
        ('{"address": "0000:zz:00.0"}', "bus 'zz'"),
        ('{"address": "1:2:3:4.5"}', "too many"),
        ('{"address": {"bus": "("}}', "regex"),
        ('{"address": {"bsu": "17"}}', "address keys"),
        ('{"vendor_id": "nvidia"}', "vendor_id"),
        ('{"resource_class": "gpu-large"}', "resource_class"),
        ('{"traits": "fast-nic"}', "trait"),
        ('{"address": 17}', "glob string"),
    ],
)
def test_bad_specs(raw, words):
    with pytest.raises(ConfigError) as info:
        parse_device_specs([raw])
    assert info.value.code == "config.pci-device-spec-invalid"
    assert info.value.key == "[pci] device_spec"
    assert words in info.value.message
