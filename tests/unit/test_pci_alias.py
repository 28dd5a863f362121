"""[pci] alias values, checked as Nova's alias schema checks them."""

import pytest

from nova_slices.errors import ConfigError
from nova_slices.fit.pci import PciAliasSpec, parse_aliases


def test_valid_aliases():
    got = parse_aliases(
        [
            '{"name": " a100 ", "vendor_id": "10DE", "product_id": "20b5", '
            '"device_type": "type-PCI", "numa_policy": "socket"}',
            '{"name": "vf", "vendor_id": "15b3", "product_id": "101e", '
            '"device_type": "type-VF"}',
            # the same alias again, identically, is harmless
            '{"name": "vf", "vendor_id": "15b3", "product_id": "101e", '
            '"device_type": "type-VF"}',
        ]
    )
    assert got == {
        "a100": PciAliasSpec("a100", "10de", "20b5", "type-PCI", "socket"),
        "vf": PciAliasSpec("vf", "15b3", "101e", "type-VF", None),
    }


GPU = '"vendor_id": "10de", "product_id": "20b5"'

# (value, words of the message besides the option and the value)
BAD_ALIASES = [
    ("{not json", "not JSON"),
    ("[1, 2]", "JSON object"),
    (f'{{"name": "a", "name": "b", {GPU}}}', "'name' appears twice"),
    (f"{{{GPU}}}", "name must be 1 to 256"),
    (f'{{"name": "  ", {GPU}}}', "name must be 1 to 256"),
    (f'{{"name": "{"n" * 257}", {GPU}}}', "name must be 1 to 256"),
    (f'{{"name": 7, {GPU}}}', "name 7 must be a string"),
    (
        f'{{"name": "a", "resource": "x", {GPU}}}',
        "unknown key(s) ['resource']",
    ),
    # device types Nova knows for aliases (no vDPA), as strings
    (f'{{"name": "a", {GPU}, "device_type": "type-VDPA"}}', "type-PCI"),
    (f'{{"name": "a", {GPU}, "device_type": "vdpa"}}', "'vdpa'"),
    (f'{{"name": "a", {GPU}, "device_type": "PF"}}', "must be one of"),
    (f'{{"name": "a", {GPU}, "device_type": 1}}', "must be a string"),
    # ids: exactly 4 hex digits (Nova's PCI_VENDOR_PATTERN)
    ('{"name": "a", "vendor_id": "nvidia", "product_id": "20b5"}', "'nvidia'"),
    ('{"name": "a", "vendor_id": "0x10de", "product_id": "20b5"}', "4 hex"),
    ('{"name": "a", "vendor_id": "de", "product_id": "20b5"}', "4 hex"),
    (
        '{"name": "a", "vendor_id": "10de", "product_id": "20b5\\n"}',
        "product_id '20b5\\n'",
    ),
    # both ids (Nova's _validate_required_ids)
    ('{"name": "a", "vendor_id": "10de"}', "product_id missing"),
    ('{"name": "a"}', "vendor_id and product_id missing"),
    ('{"name": "a", "product_id": 8373}', "must be a string"),
    # NUMA policies Nova knows
    (f'{{"name": "a", {GPU}, "numa_policy": "strict"}}', "'strict'"),
    (f'{{"name": "a", {GPU}, "numa_policy": "Required"}}', "must be one of"),
    (f'{{"name": "a", {GPU}, "numa_policy": null}}', "must be a string"),
]


@pytest.mark.parametrize(
    "raw,words", BAD_ALIASES, ids=[r[0][:40] for r in BAD_ALIASES]
)
def test_bad_aliases(raw, words):
    with pytest.raises(ConfigError) as info:
        parse_aliases([raw])
    err = info.value
    assert (err.code, err.key, err.value) == (
        "config.pci-alias-invalid",
        "[pci] alias",
        raw,
    )
    assert err.message.startswith(f"[pci] alias = {raw!r}: ")
    assert words in err.message
    assert "\n" not in err.message


def test_one_name_two_meanings():
    with pytest.raises(ConfigError) as info:
        parse_aliases(
            [
                f'{{"name": "gpu", {GPU}}}',
                f'{{"name": "gpu", {GPU}, "numa_policy": "required"}}',
            ]
        )
    assert info.value.code == "config.pci-alias-invalid"
    assert "'gpu' is defined twice" in info.value.message
