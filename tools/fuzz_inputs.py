"""Fuzz every parser that takes operator or host input; count internal errors.

Not a test and never run in CI: it prints figures.  Each target feeds
hypothesis-generated input -- random values in the shapes the parser
expects, mutations of the shipped real files, and plain junk -- to the
same entry point the command line uses, and sorts each outcome:

* accepted;
* refused with a ``NovaSlicesError`` (a code, exit 2 or 1): fine;
* anything else is an **internal error** (what the CLI would report as
  "this is a bug"), printed with its input and traceback.

It also records the slowest example of each target, since every command
must finish within a bounded time on any input.

Targets: ``config`` (a nova-slices.conf, then every config-level parser:
slice specs, PCI device specs and aliases, mdev types, CPU sets and
reserved pages), ``extra-specs`` (flavor extra specs and image
properties), ``capabilities`` and ``nodedev`` (libvirt XML), ``template``
(slice templates rendered as at spawn) and ``usage`` (``fit
--usage-json``).

    .venv/bin/python tools/fuzz_inputs.py [--examples 20000] [--target T]...
"""

import argparse
import json
import os
import random
import re
import sys
import tempfile
import time
import traceback

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from nova_slices import data  # noqa: E402
from nova_slices.cmd import inspect as inspect_cmd  # noqa: E402
from nova_slices.cmd.runtime import load_conf  # noqa: E402
from nova_slices.devices.mdev_config import resolve_mdev_types  # noqa: E402
from nova_slices.devices.pci_spec import parse_device_specs  # noqa: E402
from nova_slices.errors import NovaSlicesError  # noqa: E402
from nova_slices.fit.pci import parse_aliases  # noqa: E402
from nova_slices.host.capabilities import parse_capabilities  # noqa: E402
from nova_slices.host.devices import (  # noqa: E402
    parse_node_devices,
    split_node_file,
)
from nova_slices.host.restrictions import load_restrictions  # noqa: E402
from nova_slices.request.build import build_request  # noqa: E402
from nova_slices.slices.tree import load_tree  # noqa: E402
from nova_slices.virt.templates import render_slice_template  # noqa: E402

BUNDLES = [data.resolve_bundle(b) for b in ("gpu8-2s", "nfv-snc-2s")]


def _read(path):
    with open(path, "rb") as f:
        return f.read()


CAPS = [_read(os.path.join(b, "capabilities.xml")) for b in BUNDLES]
NODES = [_read(os.path.join(b, "node.xml")) for b in BUNDLES]
TOPOLOGIES = [parse_capabilities(c) for c in CAPS]
DEVICES = [
    parse_node_devices(split_node_file(n), t)
    for n, t in zip(NODES, TOPOLOGIES, strict=True)
]
CONFS = [
    open(os.path.join(b, "nova-slices.conf"), encoding="utf-8").read()
    for b in BUNDLES
]

# -- shared value strategies -------------------------------------------------

JUNK = st.one_of(
    st.text(max_size=40),
    st.integers(min_value=-(10**12), max_value=10**12).map(str),
    st.sampled_from(
        [
            "",
            "-1",
            "0",
            "1e309",
            "nan",
            "0-99999999999",
            "^0",
            "0-",
            "--",
            ",",
            "0x1f",
            "\x00",
            "\n",
            "../x",
            "{",
            "[]",
            "null",
            "true",
            "1GB",
            "any",
            "%(x)s",
            "$x",
        ]
    ),
)


def _mutate_text(text, rnd):
    """The text with a few attribute values, numbers or tags changed."""
    out = text
    for _ in range(rnd.randint(1, 4)):
        choice = rnd.random()
        if choice < 0.4:
            numbers = list(re.finditer(r"\d+", out))
            if numbers:
                m = rnd.choice(numbers)
                new = rnd.choice(
                    ["-1", "0", "99999999999", "x", "", "1.5", m.group() * 3]
                )
                out = out[: m.start()] + new + out[m.end() :]
        elif choice < 0.6:
            values = list(re.finditer(r"='([^']*)'|=\"([^\"]*)\"", out))
            if values:
                m = rnd.choice(values)
                out = (
                    out[: m.start()]
                    + "='"
                    + rnd.choice(["", "-5", "abc", "0x", "&amp;", "1" * 30])
                    + "'"
                    + out[m.end() :]
                )
        elif choice < 0.75:
            cut = rnd.randint(0, len(out))
            out = out[:cut]
        elif choice < 0.9:
            lines = out.splitlines(keepends=True)
            if lines:
                i = rnd.randrange(len(lines))
                lines.insert(i, lines[i] * rnd.randint(1, 3))
            out = "".join(lines)
        else:
            out = "<!DOCTYPE x [<!ENTITY e 'boom'>]>" + out
    return out


# -- targets -----------------------------------------------------------------


def target_config(draw):
    """A bundle's own conf with options added, changed or broken."""
    base = draw(st.sampled_from(range(len(BUNDLES))))
    options = [
        ("DEFAULT", "orphan_allocation_grace_seconds"),
        ("DEFAULT", "host"),
        ("libvirt", "slice_spec"),
        ("libvirt", "host_bundle"),
        ("compute", "cpu_dedicated_set"),
        ("compute", "cpu_shared_set"),
        ("compute", "reserved_huge_pages"),
        ("compute", "reserved_host_memory_mb"),
        ("compute", "cpu_allocation_ratio"),
        ("devices", "enabled_mdev_types"),
        ("devices", "enabled_vgpu_types"),
        ("pci", "device_spec"),
        ("pci", "alias"),
        ("placement", "mode"),
        ("placement", "timeout"),
        ("placement", "claim_retries"),
        ("placement", "connect_retries"),
        ("mdev_nvidia-35", "device_addresses"),
        ("mdev_nvidia-35", "mdev_class"),
        ("vgpu_nvidia-35", "device_addresses"),
    ]
    structured = st.one_of(
        JUNK,
        st.builds(
            json.dumps,
            st.dictionaries(
                st.sampled_from(
                    [
                        "name",
                        "resource_class",
                        "template_file",
                        "conflict_parent",
                        "vendor_id",
                        "product_id",
                        "address",
                        "device_type",
                        "numa_policy",
                        "physical_network",
                        "node",
                        "size",
                        "count",
                        "managed",
                    ]
                ),
                st.one_of(
                    JUNK,
                    st.integers(-5, 10**6),
                    st.booleans(),
                    st.none(),
                    st.lists(st.integers(0, 3), max_size=2),
                ),
                max_size=5,
            ),
        ),
    )
    text = CONFS[base]
    for _ in range(draw(st.integers(0, 4))):
        group, name = draw(st.sampled_from(options))
        value = draw(structured).replace("\n", " ")
        text += f"\n[{group}]\n{name} = {value}\n"
    if draw(st.integers(0, 20)) == 0:
        text = _mutate_text(text, random.Random(draw(st.integers())))
    return base, text


def run_config(example, workdir):
    base, text = example
    path = os.path.join(workdir, "fuzz.conf")
    with open(path, "w", encoding="utf-8", errors="surrogatepass") as f:
        f.write(text)
    conf = load_conf([path])
    topology, devices = TOPOLOGIES[base], DEVICES[base]
    load_tree(conf)
    parse_device_specs(conf.pci.device_spec)
    parse_aliases(conf.pci.alias)
    resolve_mdev_types(conf, devices)
    load_restrictions(conf, topology)


#: each key with values it may take; junk is drawn a quarter of the time
CELLS = ["0", "1", "2", "3", "7"]
CPUS = ["0", "1", "0-1", "0,2", "2-3", "^0", "0-3"]
MEMORY = ["512", "1024", "2048", "4096"]
KEY_VALUES = {
    "hw:numa_nodes": ["1", "2", "3", "4"],
    "hw:numa_cpus.0": CPUS,
    "hw:numa_cpus.1": CPUS,
    "hw:numa_mem.0": MEMORY,
    "hw:numa_mem.1": MEMORY,
    "hw:numa_node.0": CELLS,
    "hw:numa_node.1": CELLS,
    "hw:cpu_policy": ["dedicated", "shared", "mixed"],
    "hw:cpu_thread_policy": ["require", "isolate", "prefer"],
    "hw:emulator_threads_policy": ["isolate", "share"],
    "hw:mem_page_size": ["large", "small", "any", "2MB", "2048", "1GB"],
    "hw:cpu_realtime": ["yes", "no"],
    "hw:cpu_realtime_mask": ["^0", "^0-1", "0"],
    "hw:cpu_dedicated_mask": ["^0", "0-1", "1"],
    "hw:pci_numa_affinity_policy": [
        "required",
        "preferred",
        "legacy",
        "socket",
    ],
    "pci_passthrough:alias": ["a100:1", "vf:2", "t4:1,vf:1"],
    "resources:VGPU": ["1", "2"],
    "resources:PCPU": ["2", "4"],
    "trait:CUSTOM_X": ["required", "forbidden"],
    "hw_numa_nodes": ["1", "2"],
    "hw_numa_cpus.0": CPUS,
    "hw_numa_mem.0": MEMORY,
    "hw_numa_node.0": CELLS,
    "hw_cpu_policy": ["dedicated", "shared"],
    "hw_cpu_thread_policy": ["require", "isolate", "prefer"],
    "hw_mem_page_size": ["large", "small", "2MB", "1GB"],
    "hw_pci_numa_affinity_policy": ["required", "socket", "legacy"],
}


def _specs(draw, prefix):
    keys = [k for k in KEY_VALUES if k.startswith(prefix)]
    chosen = draw(st.lists(st.sampled_from(keys), max_size=6, unique=True))
    return {
        k: draw(st.one_of(*[st.sampled_from(KEY_VALUES[k])] * 3, JUNK))
        for k in chosen
    }


def target_extra_specs(draw):
    return (
        draw(st.one_of(st.integers(1, 16), st.integers(-2, 300))),
        draw(
            st.one_of(
                st.sampled_from([1024, 2048, 4096]), st.integers(-2, 10**6)
            )
        ),
        _specs(draw, "hw:") | _specs(draw, "pci_") | _specs(draw, "res"),
        _specs(draw, "hw_"),
    )


def run_extra_specs(example, workdir):
    build_request(*example)


def target_capabilities(draw):
    base = draw(st.sampled_from(range(len(CAPS))))
    if draw(st.integers(0, 30)) == 0:
        return draw(st.binary(max_size=200))
    text = CAPS[base].decode()
    return _mutate_text(text, random.Random(draw(st.integers()))).encode(
        "utf-8", "surrogatepass"
    )


def run_capabilities(example, workdir):
    parse_capabilities(example)


def target_nodedev(draw):
    base = draw(st.sampled_from(range(len(NODES))))
    text = NODES[base].decode()
    return base, _mutate_text(text, random.Random(draw(st.integers())))


def run_nodedev(example, workdir):
    base, text = example
    docs = split_node_file(text.encode("utf-8", "surrogatepass"))
    parse_node_devices(docs, TOPOLOGIES[base])


TEMPLATE_PIECES = [
    "{{ instance.name }}",
    "{{ 'x' * 10**9 }}",
    "{{ 'ab' * n }}",
    "{% for i in range(10**8) %}x{% endfor %}",
    "{{ instance.uuid | upper }}",
    "{{ [1] * 10**8 }}",
    "{{ 9 ** 9 ** 9 }}",
    "{{ 'x'.ljust(10**9) }}",
    "{{ '%s' % instance }}",
    "{% include '/etc/passwd' %}",
    "{% include '../../etc/hostname' %}",
    "{{ instance.__class__ }}",
    "{{ ''.__class__.__mro__ }}",
    "{{ cycler.__init__.__globals__ }}",
    "{% extends '_base.xml.j2' %}",
    "<metadata><nova-slices:record xmlns:nova-slices='x'/></metadata>",
    "<!DOCTYPE domain [<!ENTITY e SYSTEM 'file:///etc/passwd'>]>",
    "&e;",
    "{{ undefined_name.attr }}",
    "{% if %}",
    "{{ 1/0 }}",
    "{{ flavor.extra_specs | tojson }}",
    "</domain>",
    "<domain type='kvm'>",
    "<name>{{ instance.name }}</name><uuid>{{ instance.uuid }}</uuid>",
]


def target_template(draw):
    pieces = draw(st.lists(st.sampled_from(TEMPLATE_PIECES), max_size=6))
    wrap = draw(st.booleans())
    body = "".join(pieces)
    if wrap:
        body = (
            "<domain type='kvm'><name>{{ instance.name }}</name>"
            "<uuid>{{ instance.uuid }}</uuid><memory>1</memory>"
            f"{body}</domain>"
        )
    return body, draw(st.integers(0, 10**9))


def run_template(example, workdir):
    body, n = example
    directory = os.path.join(workdir, "templates")
    os.makedirs(directory, exist_ok=True)
    with open(os.path.join(directory, "_base.xml.j2"), "w") as f:
        f.write("<domain type='kvm'>{% block body %}{% endblock %}</domain>")
    path = os.path.join(directory, "fuzz.xml.j2")
    with open(path, "w", encoding="utf-8") as f:
        f.write(body)
    render_slice_template(
        path,
        {
            "instance": {
                "uuid": "5a178fdb-cd59-4dee-a4cc-71472229c4a3",
                "name": "fuzz",
            },
            "flavor": {"name": "f", "extra_specs": {}},
            "disk_path": "/var/lib/nova-slices/disk",
            "n": n,
        },
    )


JSON_VALUES = st.recursive(
    st.one_of(
        st.none(),
        st.booleans(),
        st.integers(-(10**12), 10**12),
        st.floats(allow_nan=True),
        st.text(max_size=10),
    ),
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.dictionaries(st.text(max_size=8), inner, max_size=4),
    ),
    max_leaves=20,
)
USAGE_CELL = st.fixed_dictionaries(
    {},
    optional={
        "pinned_cpus": st.one_of(
            st.lists(st.integers(-2, 200), max_size=6), JSON_VALUES
        ),
        "cpu_usage": st.one_of(st.integers(-5, 10**6), JSON_VALUES),
        "memory_mb": st.one_of(st.integers(-5, 10**9), JSON_VALUES),
        "pages": st.one_of(
            st.dictionaries(
                st.sampled_from(["4", "2048", "1048576", "x", "-1"]),
                st.one_of(st.integers(-5, 10**9), JSON_VALUES),
                max_size=3,
            ),
            JSON_VALUES,
        ),
        "pinned": JSON_VALUES,
    },
)


def target_usage(draw):
    base = draw(st.sampled_from(range(len(BUNDLES))))
    if draw(st.integers(0, 5)) == 0:
        text = json.dumps(draw(JSON_VALUES))
    else:
        doc = {
            "cells": draw(
                st.one_of(
                    st.dictionaries(
                        st.sampled_from(["0", "1", "2", "3", "9", "-1", "x"]),
                        USAGE_CELL,
                        max_size=4,
                    ),
                    JSON_VALUES,
                )
            )
        }
        if draw(st.booleans()):
            doc["pci_devices_in_use"] = draw(
                st.one_of(
                    st.lists(
                        st.sampled_from(
                            [d.address for d in DEVICES[base].pci][:4]
                            + ["0000:ff:1f.7", "x"]
                        ),
                        max_size=3,
                    ),
                    JSON_VALUES,
                )
            )
        text = json.dumps(doc)
    if draw(st.integers(0, 10)) == 0:
        text = text[: draw(st.integers(0, len(text)))]
    return base, text


def run_usage(example, workdir):
    base, text = example
    path = os.path.join(workdir, "usage.json")
    with open(path, "w", encoding="utf-8", errors="surrogatepass") as f:
        f.write(text)
    inspect_cmd._usage(path, TOPOLOGIES[base], DEVICES[base])


TARGETS = {
    "config": (target_config, run_config),
    "extra-specs": (target_extra_specs, run_extra_specs),
    "capabilities": (target_capabilities, run_capabilities),
    "nodedev": (target_nodedev, run_nodedev),
    "template": (target_template, run_template),
    "usage": (target_usage, run_usage),
}


def fuzz(name, examples, workdir, show):
    make, run = TARGETS[name]
    stats = {"examples": 0, "accepted": 0, "refused": 0, "internal": 0}
    codes, slowest, internal = {}, (0.0, None), []

    @settings(
        max_examples=examples,
        deadline=None,
        database=None,
        derandomize=False,
        suppress_health_check=list(HealthCheck),
    )
    @given(st.data())
    def case(draw_data):
        nonlocal slowest
        example = make(draw_data.draw)
        stats["examples"] += 1
        start = time.perf_counter()
        try:
            run(example, workdir)
            stats["accepted"] += 1
        except NovaSlicesError as exc:
            stats["refused"] += 1
            codes[exc.code] = codes.get(exc.code, 0) + 1
        except Exception:  # noqa: BLE001 -- what this tool counts
            stats["internal"] += 1
            if len(internal) < show:
                internal.append((repr(example)[:400], traceback.format_exc()))
        elapsed = time.perf_counter() - start
        if elapsed > slowest[0]:
            slowest = (elapsed, repr(example)[:200])

    start = time.perf_counter()
    case()
    stats["seconds"] = round(time.perf_counter() - start, 1)
    stats["slowest_s"] = round(slowest[0], 3)
    return stats, codes, slowest, internal


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--examples", type=int, default=20000, help="per target"
    )
    parser.add_argument(
        "--target", action="append", choices=sorted(TARGETS), default=[]
    )
    parser.add_argument(
        "--show", type=int, default=3, help="internal errors printed"
    )
    args = parser.parse_args(argv)
    totals = {"examples": 0, "internal": 0}
    with tempfile.TemporaryDirectory(prefix="nova-slices-fuzz-") as workdir:
        for name in args.target or list(TARGETS):
            stats, codes, slowest, internal = fuzz(
                name, args.examples, workdir, args.show
            )
            totals["examples"] += stats["examples"]
            totals["internal"] += stats["internal"]
            top = sorted(codes.items(), key=lambda kv: -kv[1])[:6]
            print(
                f"{name:12} examples {stats['examples']:6}  accepted "
                f"{stats['accepted']:6}  refused {stats['refused']:6}  "
                f"internal {stats['internal']:4}  {stats['seconds']:7.1f} s  "
                f"slowest {stats['slowest_s']:.3f} s"
            )
            print(
                "             codes: " + ", ".join(f"{c} {n}" for c, n in top)
            )
            if stats["slowest_s"] > 1:
                print(f"             slowest input: {slowest[1]}")
            for example, tb in internal:
                print(f"--- internal error on {example}\n{tb}")
            sys.stdout.flush()
    print(
        f"total: {totals['examples']} examples, "
        f"{totals['internal']} internal errors"
    )
    return 1 if totals["internal"] else 0


if __name__ == "__main__":
    sys.exit(main())
