"""Scheduler filters for slice hosts: ``[filter_scheduler] available_filters
= nova_slices.nova.filters.SliceChainFilter``.

Nova never sends ``same_subtree`` from a flavor, so Placement offers a
slice flavor candidates whose slice group and ancestor groups are not one
chain (a leaf under 4_2 with units of 4_1).  Nova claims a host's first
candidate; the driver refuses a broken chain at spawn and the server
fails.  ``SliceChainFilter`` keeps only the candidates that are chains,
checked against the host's provider tree as Placement holds it.
"""

from nova.scheduler import filters
from nova.scheduler.client import report
from oslo_log import log as logging

from nova_slices.slices import encoding

LOG = logging.getLogger(__name__)


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
