"""Scheduler filters: ``[filter_scheduler] available_filters =
nova_slices.nova.filters.SliceChainFilter`` (and ``.NUMAFitFilter``).

Nova never sends ``same_subtree`` from a flavor, so Placement offers a
slice flavor candidates whose slice group and ancestor groups are not one
chain (a leaf under 4_2 with units of 4_1).  Nova claims a host's first
candidate; the driver refuses a broken chain at spawn and the server
fails.  ``SliceChainFilter`` keeps only the candidates that are chains,
checked against the host's provider tree as Placement holds it.
"""

import nova.conf
import os_traits
from keystoneauth1 import exceptions as ks_exc
from nova import exception, objects
from nova.scheduler import filters
from nova.scheduler.client import report
from oslo_log import log as logging

from nova_slices.errors import NovaSlicesError
from nova_slices.fit.fitter import fit
from nova_slices.fit.model import Rejection
from nova_slices.nova import numa
from nova_slices.slices import encoding

LOG = logging.getLogger(__name__)
CONF = nova.conf.CONF


class SliceChainFilter(filters.BaseHostFilter, filters.CandidateFilterMixin):
    """Drop slice candidates whose groups do not form a chain."""

    RUN_ON_REBUILD = False

    def __init__(self):
        super().__init__()
        #: root provider uuid -> {provider uuid: parent uuid}
        self._parents = {}

    def host_passes(self, host_state, spec_obj):
        specs = spec_obj.flavor.extra_specs or {}
        if encoding.FLAVOR_CLASS_KEY not in specs:
            return True
        context = spec_obj._context
        fresh = set()

        def is_chain(candidate):
            mappings = candidate["mappings"]
            parents = self._tree(context, host_state.uuid, mappings, fresh)
            return encoding.is_chain(mappings, parents)

        kept = self.filter_candidates(host_state, is_chain)
        if not kept:
            LOG.debug(
                "%s: no candidate of host %s is a slice chain",
                type(self).__name__,
                host_state.host,
            )
        return bool(kept)

    def _tree(self, context, root, mappings, fresh):
        """The host's parent links; read again (once per request) when a
        candidate names a provider the cached tree does not hold."""
        parents = self._parents.get(root)
        known = parents is not None and all(
            rp in parents for rps in mappings.values() for rp in rps
        )
        if not known and root not in fresh:
            fresh.add(root)
            client = report.report_client_singleton()
            providers = client.get_providers_in_tree(context, root)
            parents = {p["uuid"]: p["parent_provider_uuid"] for p in providers}
            self._parents[root] = parents
        return parents or {}


class NUMAFitFilter(filters.BaseHostFilter, filters.CandidateFilterMixin):
    """A drop-in for ``NUMATopologyFilter`` on this project's fitter.

    The fitter searches guest-to-host cell assignments with matching
    instead of Nova's permutations, honours ``hw:numa_node.N`` (a guest
    cell pinned to a host cell) and the PCI ``socket`` policy, and gives
    the same answers as Nova elsewhere (the differential test against
    ``numa_fit_instance_to_host``).  Like Nova's filter it passes
    requests without a NUMA topology, refuses a host without
    ``COMPUTE_SOCKET_PCI_NUMA_AFFINITY`` to a socket-policy PCI request
    (which Nova 34 itself does only for the flavor's or image's policy),
    keeps only the allocation
    candidates whose PCI devices (with PCI in Placement) can be placed,
    and sets the host's NUMA limits for the compute's claim.  PCI
    requests are Nova's own (flavor aliases and Neutron ports), matched
    to the host's device pools by Nova's code; which cells they may use
    is the fitter's.
    """

    RUN_ON_REBUILD = False

    def __init__(self):
        super().__init__()
        #: (flavor, image, request or refusal) last parsed.  Every host of
        #: one scheduling request has the same flavor and image, and
        #: reading an image's properties costs more than many a fit; the
        #: objects themselves are held, so ``is`` matches only them (a
        #: request interleaved with another parses again, nothing worse)
        self._last = None

    def _request(self, spec_obj):
        """The core's request of the spec, or the NovaSlicesError that
        refuses it (returned, not raised: the same error object serves
        every host)."""
        flavor, image = spec_obj.flavor, spec_obj.image
        last = self._last
        if last is not None and last[0] is flavor and last[1] is image:
            answer = last[2]
        else:
            try:
                answer = numa.request_of(flavor, image)
            except NovaSlicesError as exc:
                answer = exc
            self._last = (flavor, image, answer)
        return answer

    def host_passes(self, host_state, spec_obj):
        if asks_socket_policy(spec_obj) and not self._has_socket_trait(
            host_state, spec_obj
        ):
            return False
        request = self._request(spec_obj)
        if isinstance(request, NovaSlicesError):
            LOG.debug("%s: %s", type(self).__name__, request)
            return False
        if not request.cells:
            return True
        if not host_state.numa_topology:
            return False
        topology, usage, restrictions = numa.host_model(
            host_state.numa_topology
        )
        pci_stats = host_state.pci_stats
        devices = numa.host_devices(pci_stats, topology)
        # Nova's NUMATopologyFilter checks its cells against these too
        limits = objects.NUMATopologyLimits(
            cpu_allocation_ratio=host_state.cpu_allocation_ratio,
            ram_allocation_ratio=host_state.ram_allocation_ratio,
        )
        core_limits = numa.limits_of(limits)
        answers = {}

        def fits(candidate):
            pci = numa.pci_requests(
                spec_obj.pci_requests, pci_stats, candidate.get("mappings")
            )
            if pci not in answers:  # candidates mostly share their devices
                answers[pci] = fit(
                    topology,
                    request,
                    usage,
                    restrictions,
                    devices,
                    pack=CONF.compute.packing_host_numa_cells_allocation_strategy,
                    pci_requests=pci,
                    limits=core_limits,
                )
            return not isinstance(answers[pci], Rejection)

        if not self.filter_candidates(host_state, fits):
            codes = {
                r.code
                for answer in answers.values()
                if isinstance(answer, Rejection)
                for r in answer.reasons
            }
            LOG.debug(
                "%s: %s does not fit: %s",
                type(self).__name__,
                host_state.host,
                ", ".join(sorted(codes)),
            )
            return False
        host_state.limits["numa_topology"] = limits
        return True

    def _has_socket_trait(self, host_state, spec_obj):
        """Whether the host's provider has ``COMPUTE_SOCKET_PCI_NUMA_AFFINITY``
        (one Placement read per host, only for socket-policy requests).
        Nova 34 requires the trait only when ``hw:pci_numa_affinity_policy``
        (flavor or image) says ``socket``, not when a PCI alias's
        ``numa_policy`` or a Neutron port's policy does."""
        client = report.report_client_singleton()
        try:
            traits = client.get_provider_traits(
                spec_obj._context, host_state.uuid
            ).traits
        except (
            exception.ResourceProviderTraitRetrievalFailed,
            ks_exc.ClientException,
        ) as exc:
            LOG.warning(
                "%s: cannot read the traits of host %s, so it cannot take "
                "a socket-policy request: %s",
                type(self).__name__,
                host_state.host,
                exc,
            )
            return False
        if SOCKET_TRAIT not in traits:
            LOG.debug(
                "%s: host %s lacks %s, which a socket PCI NUMA policy needs",
                type(self).__name__,
                host_state.host,
                SOCKET_TRAIT,
            )
            return False
        return True


SOCKET_TRAIT = os_traits.COMPUTE_SOCKET_PCI_NUMA_AFFINITY


def asks_socket_policy(spec_obj):
    """Whether a PCI request of the spec (alias, port or flavor policy)
    has the ``socket`` NUMA affinity policy."""
    requests = getattr(spec_obj.pci_requests, "requests", None) or ()
    return any(
        r.obj_attr_is_set("numa_policy") and r.numa_policy == "socket"
        for r in requests
    )
