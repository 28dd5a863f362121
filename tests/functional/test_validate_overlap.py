"""Slices that overlap are refused by ``validate`` and before any spawn.

The shipped gpu8-2s bundle and its templates are copied to a temporary
directory and its tree is broken three ways the issue measured: the same
template under two names, two siblings holding one GPU, and a leaf under
a parent whose template lacks its GPU.  ``validate`` names the code and
both slices; ``spawn`` is refused at start-up, before Placement or
libvirt is touched; the shipped bundles still validate clean.
"""

import shutil

import pytest

from nova_slices import data
from nova_slices.placement.client import expect
from nova_slices.placement.urls import path
from tests.functional.conftest import BUNDLE_CONF

ONE_GPU = "CUSTOM_SLICE_1_GPU_V1"
SHIPPED = [
    line
    for line in open(BUNDLE_CONF).read().splitlines()
    if line.startswith("slice_spec = ")
]


def _same_template(specs, templates):
    """1_2 renders 1_1's template: one GPU and one CPU set for two."""
    return [
        s.replace("slice_1_2.xml.j2", "slice_1_1.xml.j2")
        if '"name": "1_2"' in s
        else s
        for s in specs
    ]


def _siblings_share_a_gpu(specs, templates):
    """1_2 keeps its own CPUs and memory but takes 1_1's GPU."""
    leaf = templates / "slice_1_2.xml.j2"
    leaf.write_text(leaf.read_text().replace("0000:31:00.0", "0000:17:00.0"))
    return specs


def _leaves_under_wrong_parents(specs, templates):
    """1_1 (socket 0's GPU) under 4_2 and 1_5 (socket 1's) under 4_1."""
    out = []
    for s in specs:
        if '"name": "1_1"' in s:
            s = s.replace(
                '"conflict_parent": "4_1"', '"conflict_parent": "4_2"'
            )
        elif '"name": "1_5"' in s:
            s = s.replace(
                '"conflict_parent": "4_2"', '"conflict_parent": "4_1"'
            )
        out.append(s)
    return out


CASES = [
    # (id, breaker, [(code, slices)] validate reports, spawn's code)
    (
        "same template under two names",
        _same_template,
        [
            ("slice.overlap-device", ["1_1", "1_2"]),
            ("slice.overlap-cpu", ["1_1", "1_2"]),
        ],
        ("slice.overlap-device", ["1_1", "1_2"]),
    ),
    (
        "two siblings share one GPU",
        _siblings_share_a_gpu,
        [("slice.overlap-device", ["1_1", "1_2"])],
        ("slice.overlap-device", ["1_1", "1_2"]),
    ),
    (
        "leaf under a parent without its GPU",
        _leaves_under_wrong_parents,
        [
            ("slice.not-inside-parent", ["1_1", "4_2"]),
            ("slice.not-inside-parent", ["1_5", "4_1"]),
            ("slice.overlap-device", ["4_1", "1_1"]),
            ("slice.overlap-device", ["4_2", "1_5"]),
            ("slice.overlap-cpu", ["4_1", "1_1"]),
            ("slice.overlap-cpu", ["4_2", "1_5"]),
            ("slice.overlap-pages", ["4_1", "1_1"]),
            ("slice.overlap-pages", ["4_2", "1_5"]),
        ],
        ("slice.not-inside-parent", ["1_1", "4_2"]),
    ),
]


def _bundle_copy(tmp_path, breaker):
    """The shipped bundle and templates under ``tmp_path``, broken by
    ``breaker(slice specs, template dir)``; returns the config file."""
    bundle = tmp_path / "gpu8-2s"
    shutil.copytree(data.host_bundle(), bundle)
    templates = tmp_path / "templates"
    shutil.copytree(data.templates_dir(), templates)
    specs = breaker(SHIPPED, templates)
    body = [
        line
        for line in (bundle / "nova-slices.conf").read_text().splitlines()
        if not line.startswith(("slice_spec = ", "host_bundle = "))
    ]
    at = body.index("[libvirt]") + 1
    body[at:at] = [
        f"host_bundle = {bundle}",
        f"slice_template_dir = {templates}",
        *specs,
    ]
    config = bundle / "nova-slices.conf"
    config.write_text("\n".join(body) + "\n")
    return config


def _placement_state(placement):
    """Every provider's generation and every allocation on it: a write
    of any kind changes one of them."""
    providers = expect(placement.get(path("resource_providers")), 200).body
    out = {}
    for p in providers["resource_providers"]:
        held = expect(
            placement.get(
                path("resource_providers", p["uuid"], "allocations")
            ),
            200,
        ).body
        out[p["name"]] = (p["generation"], held["allocations"])
    return out


def _spawn_one_gpu(cli, name, config):
    return cli(
        "spawn",
        name,
        "--slice-class",
        ONE_GPU,
        "--format",
        "json",
        config=config,
    )


@pytest.mark.parametrize(
    "breaker,reported,refused",
    [c[1:] for c in CASES],
    ids=[c[0] for c in CASES],
)
def test_overlapping_slices_are_refused(
    cli, tmp_path, placement, breaker, reported, refused
):
    good = _bundle_copy(tmp_path / "good", lambda specs, _: specs)
    bad = _bundle_copy(tmp_path / "bad", breaker)
    # a guest on the good tree, so there is something to leave alone
    status, guest, _ = _spawn_one_gpu(cli, "g1", good)
    assert status == 0, guest
    before = _placement_state(placement)
    assert any(guest["instance_uuid"] in held for _, held in before.values())

    status, report, _ = cli("validate", "--format", "json", config=bad)
    assert status == 2
    found = [(e["code"], e["value"]["slices"]) for e in report["errors"]]
    assert found == reported
    for error in report["errors"]:
        for name in error["value"]["slices"]:
            assert name in error["message"]
    status, text, err = cli("validate", config=bad)
    assert status == 2
    code, slices = reported[0]
    assert f"error [{code}]" in err
    assert "11 of 11 slice templates render valid domain XML" in text

    status, out, err = _spawn_one_gpu(cli, "g2", bad)
    assert status == 2, out
    [error] = out["errors"]
    assert (error["code"], error["value"]["slices"]) == refused
    assert "Traceback" not in err
    if len(reported) > 1:
        assert "run `nova-slices validate`" in error["message"]
    assert _placement_state(placement) == before
    status, listing, _ = cli("list", "--format", "json", config=good)
    assert [g["name"] for g in listing["guests"]] == ["g1"]
    assert listing["discrepancies"] == []


@pytest.mark.parametrize("bundle", data.shipped_bundles())
def test_shipped_bundles_validate_clean(cli, bundle):
    config = data.host_bundle(bundle) + "/nova-slices.conf"
    status, report, _ = cli("validate", "--format", "json", config=config)
    assert status == 0, report
    assert report["errors"] == []


def test_bundle_copy_is_clean(cli, tmp_path):
    """The copy the broken cases start from validates as the original."""
    config = _bundle_copy(tmp_path, lambda specs, _: specs)
    status, report, _ = cli("validate", "--format", "json", config=config)
    assert status == 0, report
    assert len(report["slices"]) == 11


def test_overlapping_host_can_still_be_inspected_and_cleaned_up(
    cli, tmp_path, placement
):
    """Only commands that give the host away are refused: an operator
    whose templates were broken under running guests can still list
    them and destroy them while fixing the templates."""
    good = _bundle_copy(tmp_path / "good", lambda specs, _: specs)
    bad = _bundle_copy(tmp_path / "bad", _siblings_share_a_gpu)
    status, guest, _ = _spawn_one_gpu(cli, "g1", good)
    assert status == 0, guest

    status, out, _ = cli("sync", "--format", "json", config=bad)
    assert status == 2
    assert [e["code"] for e in out["errors"]] == ["slice.overlap-device"]

    status, listing, _ = cli("list", "--format", "json", config=bad)
    assert status == 0, listing
    assert [g["name"] for g in listing["guests"]] == ["g1"]
    status, _, err = cli("providers", config=bad)
    assert status == 0, err

    status, out, err = cli("destroy", "g1", "--format", "json", config=bad)
    assert status == 0, (out, err)
    status, listing, _ = cli("list", "--format", "json", config=bad)
    assert listing["guests"] == []
    held = [held for _, held in _placement_state(placement).values()]
    assert guest["instance_uuid"] not in str(held)


def test_template_device_also_offered_by_pci_is_refused(
    cli, tmp_path, placement
):
    """An A100 that slice templates hold and ``[pci] device_spec`` also
    offers would be given twice: validate names every slice holding it,
    and spawn is refused before any claim."""
    config = _bundle_copy(tmp_path, lambda specs, _: specs)
    text = config.read_text().replace(
        "[pci]\n",
        "[pci]\n"
        'device_spec = {"address": "0000:17:00.0", '
        '"resource_class": "CUSTOM_A100"}\n',
    )
    config.write_text(text)
    before = _placement_state(placement)

    status, report, _ = cli("validate", "--format", "json", config=config)
    assert status == 2
    found = [
        (e["code"], e["value"]["slices"], e["value"]["device"])
        for e in report["errors"]
    ]
    assert found == [
        ("slice.device-also-offered", [name], "0000:17:00.0")
        for name in ("8_1", "4_1", "1_1")
    ]
    assert "[pci] device_spec" in report["errors"][0]["message"]

    status, out, _ = _spawn_one_gpu(cli, "g1", config)
    assert status == 2, out
    assert out["errors"][0]["code"] == "slice.device-also-offered"
    assert _placement_state(placement) == before
