"""The compute claim's NUMA fit for guests that pin cells to host cells.

The scheduler's ``NUMAFitFilter`` honours ``hw:numa_node.N=M``, but the
compute host decides again: the resource tracker's claim
(``nova.compute.claims.Claim._test_numa_topology``, for boots, resizes,
migrations and evacuations alike) fits the guest with
``hardware.numa_fit_instance_to_host``, which does not know the key and
takes the first host-cell permutation that fits.  Its answer becomes
``instance.numa_topology``, and from that the domain's ``<numatune>`` and
the tracker's per-cell usage -- so without this module a pinned guest
would run, and be counted, on whichever cell Nova liked.

Nova has no driver hook at that point, so :func:`install` wraps that one
method, and the wrapper does something different only when the tracker's
driver says it honours pins (``LibvirtSlicesDriver``) *and* the flavor or
image pins a cell.  Then the core's fitter, the same one the filter ran,
chooses the host cell of every guest cell, and Nova's own fitter builds
the ``InstanceNUMATopology`` on exactly those cells, in that order -- so
CPU pinning, emulator threads, page sizes and the PCI check are Nova's,
and the tracker counts them as it counts any guest.  Every other claim
runs Nova's code unchanged (Nova's own NUMA, vGPU and PCI functional
tests re-run with this driver show it).
"""

import nova.conf
from nova import exception, objects
from nova.compute import claims
from nova.virt import hardware
from oslo_log import log as logging

from nova_slices.errors import NovaSlicesError
from nova_slices.fit.fitter import fit
from nova_slices.fit.model import Rejection
from nova_slices.nova import numa

LOG = logging.getLogger(__name__)
CONF = nova.conf.CONF

#: Nova's own ``Claim._test_numa_topology``, once :func:`install` ran
_nova_test_numa_topology = None


def install():
    """Route the claim's NUMA test through :func:`test_numa_topology`
    (idempotent; the compute driver calls it when it is built)."""
    global _nova_test_numa_topology
    if _nova_test_numa_topology is None:
        _nova_test_numa_topology = claims.Claim._test_numa_topology
        claims.Claim._test_numa_topology = test_numa_topology


def test_numa_topology(claim, compute_node, limit):
    """``Claim._test_numa_topology`` with explicit cell pins honoured.

    Returns None (claimed: ``claim.claimed_numa_topology`` is set) or the
    reason the claim fails, as Nova's method does.
    """
    driver = getattr(claim.tracker, "driver", None)
    host_topology = (
        compute_node.numa_topology if "numa_topology" in compute_node else None
    )
    if not getattr(driver, "honours_numa_pins", False) or not host_topology:
        return _nova_test_numa_topology(claim, compute_node, limit)
    flavor, image_meta = flavor_and_image(claim)
    try:
        request = numa.request_of(flavor, image_meta)
    except NovaSlicesError as exc:
        # nova-api validates these keys; an instance made before this
        # package was installed may still carry a bad one
        return f"the guest's NUMA request is invalid: {exc}"
    pins = {
        c.id: c.host_cell for c in request.cells if c.host_cell is not None
    }
    if not pins:
        return _nova_test_numa_topology(claim, compute_node, limit)
    host_topology = objects.NUMATopology.obj_from_db_obj(host_topology)
    fitted = fit_pinned(
        host_topology,
        requested_topology(claim, flavor, image_meta, len(request.cells)),
        request,
        limit,
        claim._pci_requests,
        claim.tracker.pci_tracker.stats,
    )
    if isinstance(fitted, str):
        return fitted
    claim.claimed_numa_topology = fitted
    LOG.info(
        "Guest NUMA cells pinned by %s placed on host cells %s",
        _pins_text(request),
        [c.id for c in fitted.cells],
        instance=claim.instance,
    )
    return None


def flavor_and_image(claim):
    """The flavor and image the claim is for: a move claim's new ones,
    else the instance's."""
    if isinstance(claim, claims.MoveClaim):
        return claim.flavor, claim.image_meta
    return claim.instance.flavor, claim.instance.image_meta


def requested_topology(claim, flavor, image_meta, cells):
    """Nova's guest NUMA topology for the claim.  Pins alone imply a
    topology in this project (one cell per pinned cell, as the fitter
    sees it) but not in Nova, so when Nova built none it is built as for
    ``hw:numa_nodes=<cells>``."""
    topology = claim.numa_topology
    if topology is not None:
        return topology
    flavor = flavor.obj_clone()
    flavor.extra_specs = dict(
        flavor.extra_specs or {}, **{"hw:numa_nodes": str(cells)}
    )
    return hardware.numa_get_constraints(flavor, image_meta)


def fit_pinned(
    host_topology, instance_topology, request, limits, pci_requests, pci_stats
):
    """The InstanceNUMATopology of a pinned guest on ``host_topology``
    (a NUMATopology with its usage), or why it does not fit (a string).

    The core's fitter chooses the host cell of each guest cell; Nova's
    fitter then fits the guest on a host topology holding exactly those
    cells in guest-cell order, where its first permutation is that
    assignment.  Any other answer means the two fitters disagree, and
    the claim fails rather than place a cell off its pin.
    """
    topology, usage, restrictions = numa.host_model(host_topology)
    answer = fit(
        topology,
        request,
        usage,
        restrictions,
        numa.host_devices(pci_stats, topology),
        pack=CONF.compute.packing_host_numa_cells_allocation_strategy,
        pci_requests=numa.pci_requests(pci_requests, pci_stats, None),
        limits=numa.limits_of(limits),
    )
    if isinstance(answer, Rejection):
        return (
            f"the guest's NUMA cells pinned by {_pins_text(request)} cannot "
            "fit the given host NUMA topology: "
            + "; ".join(f"[{r.code}] {r.message}" for r in answer.reasons)
        )
    chosen = [c.host_cell for c in answer.cells]
    by_id = {c.id: c for c in host_topology.cells}
    try:
        fitted = hardware.numa_fit_instance_to_host(
            objects.NUMATopology(cells=[by_id[h] for h in chosen]),
            instance_topology,
            provider_mapping=None,
            limits=limits,
            pci_requests=getattr(pci_requests, "requests", None),
            pci_stats=pci_stats,
        )
    except exception.MemoryPageSizeNotSupported as exc:
        fitted, why = None, str(exc)
    else:
        why = "Nova's cell fit refused them"
    if fitted is None or [c.id for c in fitted.cells] != chosen:
        return (
            f"the guest's NUMA cells pinned by {_pins_text(request)} do not "
            f"fit host cells {chosen}: {why}"
        )
    # Nova checked the physnets' cells against the chosen cells only;
    # whether another cell has the affinity is a question for the host
    network_metadata = (
        limits.network_metadata
        if limits and "network_metadata" in limits
        else None
    )
    if network_metadata and not hardware._numa_cells_support_network_metadata(
        host_topology, [by_id[h] for h in chosen], network_metadata
    ):
        return (
            f"host cells {chosen} (pinned by {_pins_text(request)}) have no "
            "NUMA affinity to the guest's physical networks"
        )
    return fitted


def _pins_text(request):
    return ", ".join(
        f"hw:numa_node.{c.id}={c.host_cell}"
        for c in request.cells
        if c.host_cell is not None
    )
