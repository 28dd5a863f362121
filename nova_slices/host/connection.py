"""The libvirt edge: one connection, the host's capabilities, guests.

With a real hypervisor this is a thin wrapper over libvirt-python.  With
libvirt's test driver (the embedded default and CI) two things differ, and
both are handled here and nowhere else:

* the test driver cannot report NUMA topology, so capabilities come from
  the host bundle's ``capabilities.xml``;
* the test driver keeps domains only for the life of the process, so we
  persist the XML of every domain we define under ``[DEFAULT] state_path``
  and define it again when the connection opens, as libvirtd does with its
  config directory.  Several processes may act at once, so each mutation
  runs under a file lock and re-reads the persisted domains first.
"""

import contextlib
import fcntl
import logging
import os
import threading

import libvirt

from nova_slices import data, xmlinput
from nova_slices.errors import HostError
from nova_slices.host.capabilities import (
    MAX_CAPABILITIES_BYTES,
    parse_capabilities,
)
from nova_slices.host.devices import parse_node_devices

LOG = logging.getLogger(__name__)

# libvirt prints every error to stderr by default; we report our own.
libvirt.registerErrorHandler(lambda _ctx, _err: None, None)

_RUNNING_SUFFIX = ".running"


def resolve_uri(conf):
    uri = conf.libvirt.connection_uri
    if uri:
        return uri
    bundle = data.resolve_bundle(conf.libvirt.host_bundle)
    node = os.path.join(bundle, "node.xml")
    return "test://" + node


def is_test_driver(uri):
    return uri.startswith("test:")


class Host:
    """An open libvirt connection plus what we need to know about it."""

    def __init__(self, conf):
        self.conf = conf
        self.uri = resolve_uri(conf)
        self.test_driver = is_test_driver(self.uri)
        if self.test_driver and self.uri != "test:///default":
            node = self.uri[len("test://") :]
            if not os.path.isfile(node):
                raise HostError(
                    f"[libvirt] host_bundle / connection_uri: node file "
                    f"{node} does not exist; a host bundle holds node.xml "
                    "and capabilities.xml",
                    code="host.bundle-missing",
                    key="[libvirt] host_bundle",
                    value=node,
                )
        try:
            self.conn = libvirt.open(self.uri)
        except libvirt.libvirtError as exc:
            raise HostError(
                f"[libvirt] connection_uri = {self.uri!r}: cannot connect: "
                f"{exc.get_error_message()}",
                code="host.connect-failed",
                key="[libvirt] connection_uri",
                value=self.uri,
            ) from None
        self.domains_dir = os.path.join(conf.state_path, "libvirt", "domains")
        self._thread_lock = threading.RLock()
        self._caps = None
        self._topology = None
        self._devices = None
        if self.test_driver:
            os.makedirs(self.domains_dir, exist_ok=True)
            with self.lock():
                self._load_persisted()

    # -- identity ----------------------------------------------------------
    @property
    def hostname(self):
        if self.conf.host:
            return self.conf.host
        if self.test_driver:
            return (
                os.path.basename(os.path.dirname(self.uri[len("test://") :]))
                or "test"
            )
        return self.conn.getHostname()

    def capabilities_xml(self):
        if self._caps is None:
            self._caps = self._read_capabilities()
        return self._caps

    def _capabilities_path(self):
        path = self.conf.libvirt.capabilities_file
        if not path and self.test_driver:
            path = os.path.join(
                os.path.dirname(self.uri[len("test://") :]),
                "capabilities.xml",
            )
        return path

    def _read_capabilities(self):
        path = self._capabilities_path()
        if not path:
            return self.conn.getCapabilities()
        try:
            # bounded: parse_capabilities refuses what is over the limit
            return xmlinput.read_bounded(path, MAX_CAPABILITIES_BYTES)
        except OSError as exc:
            raise HostError(
                f"[libvirt] capabilities_file = {path!r}: cannot read: "
                f"{exc.strerror}",
                code="host.capabilities-unreadable",
                key="[libvirt] capabilities_file",
                value=path,
            ) from None

    def _capabilities_source(self):
        path = self._capabilities_path()
        return (
            f"[libvirt] capabilities_file {path}"
            if path
            else "libvirt capabilities"
        )

    def topology(self):
        """The host's NUMA topology (parsed once per connection)."""
        if self._topology is None:
            self._topology = parse_capabilities(
                self.capabilities_xml(), self._capabilities_source()
            )
        return self._topology

    def devices(self):
        """PCI devices and mdevs from libvirt's node devices."""
        if self._devices is None:
            docs = [d.XMLDesc(0) for d in self.conn.listAllDevices()]
            self._devices = parse_node_devices(
                docs, self.topology(), "libvirt node devices"
            )
        return self._devices

    def instances_path(self):
        """Where guests' disks live (Nova's ``instances_path``)."""
        return os.path.join(self.conf.state_path, "instances")

    def instances_disk_gb(self):
        """Size of the instances filesystem in whole GiB (DISK_GB total)."""
        path = self.instances_path()
        try:
            os.makedirs(path, exist_ok=True)
            st = os.statvfs(path)
        except OSError as exc:
            raise HostError(
                f"[DEFAULT] state_path: cannot use {path} for guest disks: "
                f"{exc.strerror}",
                code="host.instances-path",
                key="[DEFAULT] state_path",
                value=path,
            ) from None
        return st.f_blocks * st.f_frsize // (1024**3)

    def pci_addresses(self):
        """PCI addresses of the host's node devices (``0000:3b:00.0``)."""
        return frozenset(d.address for d in self.devices().pci)

    # -- persistence for the test driver -------------------------------------
    @contextlib.contextmanager
    def lock(self):
        """Serialize mutations across threads and processes of this host.

        A file lock under ``state_path`` with any driver: a dynamic
        guest's local claim (its pCPUs, pages, devices) is only safe if
        no other process on the host claims between our read of the
        domains and our define.  Not re-entrant.
        """
        with self._thread_lock:
            os.makedirs(self.conf.state_path, exist_ok=True)
            path = os.path.join(self.conf.state_path, "host.lock")
            with open(path, "a") as handle:
                fcntl.flock(handle, fcntl.LOCK_EX)
                try:
                    if self.test_driver:
                        self._load_persisted()
                    yield
                finally:
                    fcntl.flock(handle, fcntl.LOCK_UN)

    def _persisted_path(self, name):
        return os.path.join(self.domains_dir, name + ".xml")

    def _load_persisted(self):
        """Make this connection's domains match the persisted ones."""
        wanted = {}
        for entry in sorted(os.listdir(self.domains_dir)):
            if entry.endswith(".xml"):
                wanted[entry[:-4]] = os.path.join(self.domains_dir, entry)
        for dom in self.conn.listAllDomains():
            if dom.name() not in wanted:
                if dom.isActive():
                    dom.destroy()
                dom.undefine()
        for name, path in wanted.items():
            running = os.path.exists(path + _RUNNING_SUFFIX)
            try:
                dom = self.conn.lookupByName(name)
            except libvirt.libvirtError:
                with open(path, encoding="utf-8") as f:
                    dom = self.conn.defineXML(f.read())
            if running and not dom.isActive():
                dom.create()

    def _persist(self, dom, running):
        if not self.test_driver:
            return
        path = self._persisted_path(dom.name())
        tmp = path + ".tmp"
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(dom.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE))
        os.replace(tmp, path)
        marker = path + _RUNNING_SUFFIX
        if running:
            open(marker, "w").close()
        elif os.path.exists(marker):
            os.unlink(marker)

    def _forget(self, name):
        if not self.test_driver:
            return
        path = self._persisted_path(name)
        for p in (path + _RUNNING_SUFFIX, path):
            if os.path.exists(p):
                os.unlink(p)

    # -- guests ----------------------------------------------------------
    def domains(self):
        return self.conn.listAllDomains()

    def lookup(self, name):
        try:
            return self.conn.lookupByName(name)
        except libvirt.libvirtError as exc:
            if exc.get_error_code() == libvirt.VIR_ERR_NO_DOMAIN:
                return None
            raise

    def define_and_start(self, xml):
        """Define with schema validation and start; undefine on failure."""
        try:
            dom = self.conn.defineXMLFlags(
                xml, libvirt.VIR_DOMAIN_DEFINE_VALIDATE
            )
        except libvirt.libvirtError as exc:
            raise HostError(
                f"libvirt refused the domain XML: {exc.get_error_message()}",
                code="guest.define-failed",
            ) from None
        try:
            self._persist(dom, running=False)
            dom.create()
        except libvirt.libvirtError as exc:
            self.undefine(dom)
            raise HostError(
                f"libvirt could not start {dom.name()}: "
                f"{exc.get_error_message()}",
                code="guest.start-failed",
            ) from None
        self._persist(dom, running=True)
        return dom

    def undefine(self, dom):
        name = dom.name()
        if dom.isActive():
            dom.destroy()
        dom.undefineFlags(
            libvirt.VIR_DOMAIN_UNDEFINE_NVRAM if not self.test_driver else 0
        )
        self._forget(name)

    def close(self):
        with contextlib.suppress(libvirt.libvirtError):
            self.conn.close()
