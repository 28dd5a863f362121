"""The core's view of a Nova compute host, over Nova's libvirt connection.

The core (:mod:`nova_slices.compute`) asks a host for its topology, its
PCI devices and its name; inside nova-compute those come from the
connection Nova's own ``Host`` holds (fakelibvirt in Nova's functional
harness), so both see the same machine.
"""

from nova.virt.libvirt import host as nova_host

from nova_slices.host.capabilities import parse_capabilities
from nova_slices.host.devices import parse_node_devices


class NovaHost:
    def __init__(self, host, hostname):
        """``host`` is Nova's ``nova.virt.libvirt.host.Host``."""
        self._host = host
        self.hostname = hostname
        self._topology = None
        self._devices = None

    def _conn(self):
        return self._host.get_connection()

    def topology(self):
        if self._topology is None:
            self._topology = parse_capabilities(self._conn().getCapabilities())
        return self._topology

    def devices(self):
        if self._devices is None:
            flags = nova_host.libvirt.VIR_CONNECT_LIST_NODE_DEVICES_CAP_PCI_DEV
            docs = [d.XMLDesc(0) for d in self._conn().listAllDevices(flags)]
            self._devices = parse_node_devices(docs, self.topology())
        return self._devices

    def pci_addresses(self):
        return frozenset(d.address for d in self.devices().pci)
