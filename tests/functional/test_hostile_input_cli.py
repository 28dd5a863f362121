"""Hostile host files, CPU sets and templates through the command line.

One row per case: the command (with hostile files written to
``tmp_path``), the exit status, the error code, and words the message
must hold: the file or option and the offending value.  Every row also
checks that the command returned within :data:`BOUND` seconds and never
printed a traceback; before these limits, a 100,000-CPU capabilities
file took 36 s, ``0-99999999999`` in a CPU set and ``{{ 'x' * 10**9 }}``
in a template did not finish.
"""

import glob
import os
import shutil
import time
from typing import NamedTuple

import pytest
from lxml import etree

from nova_slices import data
from nova_slices.cmd.main import main
from nova_slices.virt import sandbox
from tests.fixtures.scheduling import EXCLUSIVE
from tests.functional.conftest import BUNDLE_CONF

# wall-clock bounds: see tests/fixtures/scheduling.py
pytestmark = EXCLUSIVE

#: seconds any row may take: the render deadline of the slowest row,
#: plus slack for a loaded machine
BOUND = sandbox.MAX_RENDER_SECONDS + 5
CAPS = os.path.join(data.host_bundle(), "capabilities.xml")
#: the shipped host without slices, where CPU sets apply
NFV_CONF = os.path.join(data.host_bundle("nfv-snc-2s"), "nova-slices.conf")
NODE = os.path.join(data.host_bundle(), "node.xml")


def _shipped(path, old, new):
    def make(tmp_path):
        target = tmp_path / os.path.basename(path)
        with open(path) as f:
            text = f.read()
        assert old in text
        target.write_text(text.replace(old, new, 1))
        return target

    return make


def _written(name, text):
    def make(tmp_path):
        target = tmp_path / name
        target.write_text(text() if callable(text) else text)
        return target

    return make


def _many_cpus():
    cpus = "".join(f"<cpu id='{i}'/>" for i in range(100_000))
    return (
        "<capabilities><host><topology><cells num='1'><cell id='0'>"
        f"<cpus num='100000'>{cpus}</cpus></cell></cells></topology></host>"
        "</capabilities>"
    )


DOCTYPE = "<!DOCTYPE capabilities [<!ENTITY x SYSTEM 'file:///etc/passwd'>]>"
FIT = ["fit", "--vcpus", "2", "--memory-mb", "1024"]


class FileRow(NamedTuple):
    id: str
    #: command before ``--capabilities-xml``
    argv: list
    make: object  # tmp_path -> hostile capabilities file, or "/dev/zero"
    code: str
    words: tuple
    nodedev: object = None  # tmp_path -> hostile node file


FILE_ROWS = [
    FileRow(
        "100k-cpus",
        ["topology"],
        _written("caps.xml", _many_cpus),
        "host.capabilities-too-many",
        ("100000 <cpu>", "16384 CPUs"),
    ),
    FileRow(
        "100k-cpus-fit",
        FIT,
        _written("caps.xml", _many_cpus),
        "host.capabilities-too-many",
        ("100000 <cpu>",),
    ),
    FileRow(
        "endless-file",
        ["topology"],
        lambda _: "/dev/zero",
        "host.capabilities-too-large",
        ("larger than the limit of 16777216 bytes",),
    ),
    FileRow(
        "doctype",
        ["topology"],
        _shipped(CAPS, "<capabilities>", DOCTYPE + "<capabilities>"),
        "host.capabilities-doctype",
        ("DOCTYPE",),
    ),
    FileRow(
        "negative-memory",
        FIT,
        _shipped(CAPS, "<memory unit='KiB'>", "<memory unit='KiB'>-"),
        "host.value-out-of-range",
        ("<cell id='0'> <memory>", "-"),
    ),
    FileRow(
        "negative-page-count",
        ["topology"],
        _shipped(CAPS, "size='2048'>1024<", "size='2048'>-1024<"),
        "host.value-out-of-range",
        ("<pages size='2048'> count", "-1024"),
    ),
    FileRow(
        "negative-cell-id",
        ["topology"],
        _shipped(CAPS, "<cell id='3'>", "<cell id='-3'>"),
        "host.value-out-of-range",
        ("<cell id>", "-3"),
    ),
    FileRow(
        "sibling-range",
        ["topology"],
        _shipped(CAPS, "siblings='0,64'", "siblings='0-99999999999'"),
        "host.invalid-capabilities",
        ("siblings='0-99999999999'", "65535"),
    ),
    FileRow(
        "nodedev-numa-not-a-number",
        ["topology"],
        lambda _: CAPS,
        "host.invalid-nodedev",
        ("<numa node>", "'zero'"),
        _shipped(NODE, "<numa node='0'/>", "<numa node='zero'/>"),
    ),
    FileRow(
        "nodedev-negative-iommu-group",
        ["topology"],
        lambda _: CAPS,
        "host.value-out-of-range",
        ("<iommuGroup number>", "-40"),
        _shipped(NODE, "<iommuGroup number='40'", "<iommuGroup number='-40'"),
    ),
    FileRow(
        "nodedev-endless",
        ["topology"],
        lambda _: CAPS,
        "host.nodedev-too-large",
        ("larger than the limit",),
        lambda _: "/dev/zero",
    ),
]


def _run(cli, *argv, config=BUNDLE_CONF):
    start = time.monotonic()
    status, out, err = cli(*argv, "--format", "json", config=config)
    elapsed = time.monotonic() - start
    assert elapsed < BOUND, f"took {elapsed:.1f} s"
    assert "Traceback" not in err and "internal" not in err
    return status, out


@pytest.mark.parametrize("row", FILE_ROWS, ids=[r.id for r in FILE_ROWS])
def test_hostile_host_files(cli, tmp_path, row):
    caps = str(row.make(tmp_path))
    argv = [*row.argv, "--capabilities-xml", caps]
    named = caps
    if row.nodedev is not None:
        named = str(row.nodedev(tmp_path))
        argv += ["--nodedev-xml", named]
    status, out = _run(cli, *argv)
    assert status == 2, out
    [error] = out["errors"]
    assert error["code"] == row.code, error
    assert named in error["key"] and named in error["message"]
    for word in row.words:
        assert word in error["message"]


# -- configuration: CPU sets and slice templates -------------------------


def _conf(tmp_path, text, base=BUNDLE_CONF):
    path = tmp_path / "hostile.conf"
    path.write_text(text)
    return [base, path]


def _template(template_dir, text):
    (template_dir / "slice_1_1.xml.j2").write_text(text)


def _link_out(template_dir):
    os.unlink(template_dir / "slice_1_1.xml.j2")
    os.symlink("/etc/passwd", template_dir / "slice_1_1.xml.j2")


NS = "http://openstack.org/xmlns/nova-slices/1.0"
CONFIG_ROWS = [
    # (id, config text, template breaker or the base config, command,
    # code, words)
    (
        "dedicated-set-range",
        "[compute]\ncpu_dedicated_set = 0-99999999999\n",
        NFV_CONF,
        "validate",
        "config.cpuset-too-large",
        ("[compute] cpu_dedicated_set", "0-99999999999", "are 0-63"),
    ),
    (
        "shared-set-range",
        "[compute]\ncpu_shared_set = 1,^2-99999999999\n",
        NFV_CONF,
        "validate",
        "config.cpuset-too-large",
        ("[compute] cpu_shared_set", "99999999999"),
    ),
    (
        "shared-set-range-topology",
        "[compute]\ncpu_shared_set = 1,^2-99999999999\n",
        BUNDLE_CONF,
        "topology",
        "config.cpuset-too-large",
        ("[compute] cpu_shared_set", "99999999999"),
    ),
    (
        "template-multiplies",
        "",
        lambda d: _template(d, "<domain>{{ 'x' * 10**9 }}</domain>"),
        "validate",
        "template.too-large",
        ("slice_1_1.xml.j2", "'x' * 10**9"),
    ),
    (
        "template-loops",
        "",
        lambda d: _template(
            d,
            "<domain>{% for i in range(100000) %}{% for j in range(100000)"
            " %}{% endfor %}{% endfor %}</domain>",
        ),
        "validate",
        "template.timeout",
        ("slice_1_1.xml.j2", "range(100000)"),
    ),
    (
        "template-links-out",
        "",
        _link_out,
        "validate",
        "template.outside-directory",
        ("slice_1_1.xml.j2", "/etc/passwd"),
    ),
    (
        "template-doctype",
        "",
        lambda d: _template(
            d,
            "<!DOCTYPE domain [<!ENTITY x SYSTEM 'file:///etc/hostname'>]>"
            "<domain><description>&x;</description></domain>",
        ),
        "validate",
        "template.doctype",
        ("slice_1_1.xml.j2", "DOCTYPE"),
    ),
    (
        "template-forges-metadata",
        "",
        lambda d: _template(
            d,
            f"<domain><metadata><s:instance xmlns:s='{NS}'/></metadata>"
            "</domain>",
        ),
        "validate",
        "template.reserved-metadata",
        ("slice_1_1.xml.j2", NS),
    ),
]


@pytest.mark.parametrize(
    "text,breaker,command,code,words",
    [r[1:] for r in CONFIG_ROWS],
    ids=[r[0] for r in CONFIG_ROWS],
)
def test_hostile_configuration(
    cli, tmp_path, template_dir, text, breaker, command, code, words
):
    if callable(breaker):
        breaker(template_dir)
        config = _conf(
            tmp_path, f"[libvirt]\nslice_template_dir = {template_dir}\n"
        )
    else:
        config = _conf(tmp_path, text, breaker)
    status, out = _run(cli, command, config=config)
    assert status == 2, out
    errors = [e for e in out["errors"] if e["code"] == code]
    assert errors, out["errors"]
    for word in words:
        assert word in errors[0]["message"]


def test_template_refusal_at_spawn_releases_the_claim(cli, template_dir):
    base = template_dir / "_base.xml.j2"
    base.write_text(
        base.read_text().replace("</domain>", "{{ 'x' * 10**9 }}</domain>")
    )
    config = _conf(
        template_dir.parent,
        f"[libvirt]\nslice_template_dir = {template_dir}\n",
    )
    status, out = _run(
        cli,
        "spawn",
        "g",
        "--slice-class",
        "CUSTOM_SLICE_1_GPU_V1",
        config=config,
    )
    assert status == 2, out
    [error] = out["errors"]
    assert error["code"] == "template.too-large"
    assert "_base.xml.j2" in error["message"]
    status, providers = _run(cli, "providers", config=config)
    used = [
        p["name"]
        for p in providers
        if any(i["used"] for i in p["inventories"].values())
    ]
    assert used == []


def test_relative_state_path_gives_absolute_paths(tmp_path, monkeypatch):
    """A relative --state-path is resolved where it is read: the domain's
    disk path must be absolute (libvirt's schema refuses relative ones,
    which failed every slice)."""
    monkeypatch.chdir(tmp_path)
    base = ["--config-file", BUNDLE_CONF, "--state-path", "state"]
    assert main([*base, "validate"]) == 0
    assert (
        main([*base, "spawn", "g", "--slice-class", "CUSTOM_SLICE_1_GPU_V1"])
        == 0
    )
    [domain] = glob.glob(
        str(tmp_path / "state" / "libvirt" / "domains" / "*.xml")
    )
    disk = etree.parse(domain).find("devices/disk/source").get("file")
    assert disk.startswith(str(tmp_path / "state") + os.sep), disk
    assert main([*base, "destroy", "g"]) == 0
    shutil.rmtree(tmp_path / "state", ignore_errors=True)
