"""Run Nova's own NUMA fit on benchmark cases, in a separate process.

A line protocol over stdin/stdout, one JSON object a line, so the parent
can kill this process when Nova runs past its timeout:

* child -> ``{"ready": true}`` once Nova is imported (or ``{"error"}``);
* parent -> ``{"case": {...}, "reps": N, "budget_s": B}``;
* child -> ``{"begin": i}`` right before the i-th timed call, then
  ``{"rep": i, "ms": t, "fits": bool, "cells": [...] | null}``; it runs
  another repetition only while the total stays under ``budget_s``;
* child -> ``{"done": true, "guest_cells": [...]}`` (or ``{"error"}``).

Nova's inputs are built the way Nova builds them, from the case dict
``scenarios.build_case`` made (the same dict our fitter's inputs come
from):

* host: ``objects.NUMATopology`` of ``NUMACell(id, cpuset=set(),
  pcpuset=cpus, memory, cpu_usage=0, memory_usage, pinned_cpus,
  siblings, mempages=[NUMAPagesTopology(size_kb, total, used,
  reserved=0)], network_metadata=NetworkMetadata(physnets=set(),
  tunneled=False), socket)``, ``socket`` as Nova's libvirt driver sets it
  (None for a cell without CPUs);
* guest: ``hardware.numa_get_constraints(Flavor, ImageMeta)`` on the
  case's flavor (the scheduler's own input);
* PCI: ``[pci] device_spec`` and ``[pci] alias`` set in CONF,
  ``InstancePCIRequest`` list from Nova's
  ``pci.request._translate_alias_to_requests`` (what the flavor's
  ``pci_passthrough:alias`` becomes) and ``PciDeviceStats(host)`` filled
  with ``PciDevice.create`` objects through ``add_device``;
* ``numa_fit_instance_to_host(host, guest, provider_mapping=None,
  limits=None, pci_requests=..., pci_stats=...)``.  ``provider_mapping``
  is required in Nova 34; None with no ``rp_uuids`` in the request
  specs means "any pool" (PCI in Placement off), as in the scheduler.

Every repetition builds fresh objects (Nova's fit mutates the guest
topology); only the ``numa_fit_instance_to_host`` call is timed.
"""

import json
import logging
import sys
import time
import types
import warnings


def send(obj):
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


def load_nova():
    warnings.simplefilter("ignore")
    logging.disable(logging.CRITICAL)
    import nova.conf
    from nova import objects

    objects.register_all()
    from nova.pci import request as pci_request
    from nova.pci import stats
    from nova.virt import hardware

    conf = nova.conf.CONF
    conf([], project="nova", default_config_files=[])
    return conf, objects, hardware, stats, pci_request


class NovaInputs:
    def __init__(self, nova):
        self.conf, self.objects, self.hardware, self.stats, self.req = nova

    def host(self, case):
        o = self.objects
        cells = []
        for c in case["cells"]:
            u = case["usage"].get(str(c["id"]), {})
            used = {s: n for s, n in u.get("pages", [])}
            cells.append(
                o.NUMACell(
                    id=c["id"],
                    cpuset=set(),
                    pcpuset=set(c["cpus"]),
                    memory=c["memory_mb"],
                    cpu_usage=0,
                    memory_usage=u.get("memory_mb", 0),
                    pinned_cpus=set(u.get("pinned", [])),
                    siblings=[set(s) for s in c["siblings"]],
                    mempages=[
                        o.NUMAPagesTopology(
                            size_kb=s, total=t, used=used.get(s, 0), reserved=0
                        )
                        for s, t in c["pages"]
                    ],
                    network_metadata=o.NetworkMetadata(
                        physnets=set(), tunneled=False
                    ),
                    socket=c["nova_socket"],
                )
            )
        return o.NUMATopology(cells=cells)

    def guest(self, case):
        o = self.objects
        g = case["guest"]
        flavor = o.Flavor(
            vcpus=g["vcpus"],
            memory_mb=g["memory_mb"],
            extra_specs=dict(g["extra_specs"]),
            name="bench",
        )
        image = o.ImageMeta.from_dict({"properties": {}})
        return self.hardware.numa_get_constraints(flavor, image)

    def pci(self, case, host):
        if not case["pci"]:
            return None, None
        o = self.objects
        spec = [
            json.dumps(
                {"vendor_id": d["vendor_id"], "product_id": d["product_id"]}
            )
            for d in case["devices"]
        ]
        self.conf.set_override("device_spec", spec, group="pci")
        self.conf.set_override("alias", case["aliases"], group="pci")
        # Nova parses [pci] alias once per process (functools.cache)
        self.req.get_alias_from_config.cache_clear()
        alias = case["guest"]["extra_specs"]["pci_passthrough:alias"]
        requests = self.req._translate_alias_to_requests(alias)
        pci_stats = self.stats.PciDeviceStats(host)
        for d in case["devices"]:
            pci_stats.add_device(
                o.PciDevice.create(
                    None,
                    {
                        "compute_node_id": 1,
                        "address": d["address"],
                        "vendor_id": d["vendor_id"],
                        "product_id": d["product_id"],
                        "numa_node": d["numa_node"],
                        "dev_type": "type-PCI",
                        "label": f"label_{d['vendor_id']}_{d['product_id']}",
                        "dev_id": "pci_"
                        + d["address"].replace(":", "_").replace(".", "_"),
                    },
                )
            )
        return requests, pci_stats

    def request_spec(self, vcpus, memory_mb, extra_specs, requests=None):
        """A RequestSpec of the flavor as the API builds it: its NUMA
        constraints and PCI requests."""
        o = self.objects
        flavor = o.Flavor(
            vcpus=vcpus,
            memory_mb=memory_mb,
            extra_specs=dict(extra_specs),
            name="bench",
            flavorid="bench",
            root_gb=1,
            ephemeral_gb=0,
            swap=0,
        )
        image = o.ImageMeta.from_dict({"properties": {}})
        return o.RequestSpec(
            flavor=flavor,
            image=image,
            numa_topology=self.hardware.numa_get_constraints(flavor, image),
            pci_requests=o.InstancePCIRequests(requests=requests or []),
            instance_uuid="00000000-0000-4000-8000-000000000001",
        )

    def filter_args(self, case):
        """(host_state, spec_obj) as a scheduler filter receives them:
        the host's NUMATopology and PCI pools, and a RequestSpec of the
        case's flavor with the API's NUMA constraints and PCI requests."""
        host = self.host(case)
        requests, pci_stats = self.pci(case, host)
        g = case["guest"]
        spec = self.request_spec(
            g["vcpus"], g["memory_mb"], g["extra_specs"], requests
        )
        state = types.SimpleNamespace(
            host="bench",
            nodename="bench",
            uuid="00000000-0000-4000-8000-0000000000aa",
            numa_topology=host,
            pci_stats=pci_stats,
            cpu_allocation_ratio=1.0,
            ram_allocation_ratio=1.0,
            limits={},
            allocation_candidates=[{"mappings": {}, "allocations": {}}],
        )
        return state, spec


def run_filter(inputs, msg):
    """Nova's NUMATopologyFilter.host_passes on the case, timed."""
    from nova.scheduler.filters import numa_topology_filter

    case = msg["case"]
    reps = max(1, int(msg.get("reps", 1)))
    budget = float(msg.get("budget_s", 1.0))
    total = 0.0
    for i in range(reps):
        state, spec = inputs.filter_args(case)
        nova_filter = numa_topology_filter.NUMATopologyFilter()
        send({"begin": i})
        start = time.perf_counter()
        passed = nova_filter.host_passes(state, spec)
        elapsed = time.perf_counter() - start
        total += elapsed
        send({"rep": i, "ms": elapsed * 1000, "fits": passed, "cells": None})
        if total + elapsed > budget:
            break
    send(
        {
            "done": True,
            "guest_cells": None,
            "pci_devices": None,
            "pci_requests": None,
        }
    )


def run_case(inputs, msg):
    case = msg["case"]
    reps = max(1, int(msg.get("reps", 1)))
    budget = float(msg.get("budget_s", 1.0))
    total = 0.0
    guest_cells = None
    pci_info = {"pci_devices": None, "pci_requests": None}
    for i in range(reps):
        host = inputs.host(case)
        guest = inputs.guest(case)
        requests, pci_stats = inputs.pci(case, host)
        if guest_cells is None:
            guest_cells = [
                {
                    "id": c.id,
                    "pcpus": sorted(c.pcpuset),
                    "memory_mb": c.memory,
                    "cpu_policy": c.cpu_policy,
                    "pagesize": c.pagesize,
                }
                for c in guest.cells
            ]
        if pci_stats is not None and pci_info["pci_devices"] is None:
            pci_info = {
                "pci_devices": sum(p["count"] for p in pci_stats.pools),
                "pci_requests": [
                    {
                        "count": r.count,
                        "spec": r.spec,
                        "numa_policy": r.numa_policy,
                    }
                    for r in requests
                ],
            }
        send({"begin": i})
        start = time.perf_counter()
        got = inputs.hardware.numa_fit_instance_to_host(
            host,
            guest,
            None,
            limits=None,
            pci_requests=requests,
            pci_stats=pci_stats,
        )
        elapsed = time.perf_counter() - start
        total += elapsed
        send(
            {
                "rep": i,
                "ms": elapsed * 1000,
                "fits": got is not None,
                "cells": [c.id for c in got.cells] if got else None,
            }
        )
        if total + elapsed > budget:
            break
    send({"done": True, "guest_cells": guest_cells, **pci_info})


def main():
    try:
        inputs = NovaInputs(load_nova())
    except Exception as exc:  # report, so the parent says why
        send({"error": f"cannot import Nova: {type(exc).__name__}: {exc}"})
        return 1
    send({"ready": True})
    for line in sys.stdin:
        if not line.strip():
            continue
        try:
            msg = json.loads(line)
            (run_filter if msg.get("filter") else run_case)(inputs, msg)
        except Exception as exc:
            send({"error": f"{type(exc).__name__}: {exc}"})
    return 0


if __name__ == "__main__":
    sys.exit(main())
