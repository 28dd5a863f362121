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
  runs under a file lock and re-reads the persisted domains first.  A
  persisted file that cannot be defined again (truncated, hand-edited)
  leaves out that one guest, named in :attr:`Host.unreadable` with its
  file, and never the others.
"""

import contextlib
import dataclasses
import fcntl
import logging
import os
import re
import threading

import libvirt
from oslo_config import cfg

from nova_slices import data, faults, xmlinput
from nova_slices.errors import ConfigError, HostError
from nova_slices.host.capabilities import (
    MAX_CAPABILITIES_BYTES,
    parse_capabilities,
)
from nova_slices.host.devices import parse_node_devices

LOG = logging.getLogger(__name__)

# libvirt prints every error to stderr by default; we report our own.
libvirt.registerErrorHandler(lambda _ctx, _err: None, None)

_RUNNING_SUFFIX = ".running"
_UUID = re.compile(r"<uuid>\s*([0-9a-fA-F-]{32,36})\s*</uuid>")


@dataclasses.dataclass(frozen=True)
class UnreadableDomain:
    """A persisted domain file that libvirt could not define again."""

    name: str
    path: str
    reason: str
    #: its domain uuid (our instance uuid) if that part of it survived
    instance_uuid: str | None = None


def _uuid_in(text):
    match = _UUID.search(text or "")
    return match.group(1).lower() if match else None


def chosen(conf, name, group=None):
    """Whether the operator set ``name`` (a file, the command line, an
    override), as opposed to it holding the option's default."""
    where = conf.get_location(name, group)
    return where is not None and (
        where.location.is_user_controlled
        or where.location is cfg.Locations.set_override
    )


def resolve_uri(conf):
    """The libvirt URI, failing closed.

    An empty ``connection_uri`` means libvirt's test driver on a host
    bundle, a demo machine.  That is only taken when it was chosen:
    there is no configuration at all, or ``[libvirt] host_bundle`` is set.
    A nova.conf that configures anything else but forgets the URI would
    otherwise show (and report to Placement) the shipped demo host as if
    it were this machine.
    """
    uri = conf.libvirt.connection_uri
    if uri:
        return uri
    files = list(conf.config_file or ()) + list(conf.config_dir or ())
    if files and not chosen(conf, "host_bundle", "libvirt"):
        raise ConfigError(
            "[libvirt] connection_uri is not set in "
            + ", ".join(files)
            + ": set it to this machine's hypervisor (qemu:///system on a "
            "compute host), or set [libvirt] host_bundle (a shipped bundle: "
            + ", ".join(data.shipped_bundles())
            + "; or a bundle directory) to run on a demo host in "
            "libvirt's test driver",
            code="config.connection-uri-required",
            key="[libvirt] connection_uri",
            value=uri,
        )
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
        #: {name: UnreadableDomain} of persisted files left out
        self.unreadable = {}
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
        unreadable = {}
        for name, path in wanted.items():
            running = os.path.exists(path + _RUNNING_SUFFIX)
            try:
                dom = self.conn.lookupByName(name)
            except libvirt.libvirtError:
                dom = self._define_persisted(name, path, unreadable)
                if dom is None:
                    continue
            if running and not dom.isActive():
                dom.create()
        self.unreadable = unreadable

    def _define_persisted(self, name, path, unreadable):
        """Define one persisted domain again; None (and an entry in
        ``unreadable``) when its file cannot be read or defined."""
        text = None
        try:
            with open(path, encoding="utf-8") as f:
                text = f.read()
            return self.conn.defineXML(text)
        except libvirt.libvirtError as exc:
            reason = exc.get_error_message()
        except (OSError, UnicodeDecodeError) as exc:
            reason = str(exc)
        reason = " ".join(reason.split())
        unreadable[name] = UnreadableDomain(name, path, reason, _uuid_in(text))
        if name not in self.unreadable:
            LOG.warning(
                "persisted domain file %s cannot be defined (%s); guest %s "
                "is left out, the other guests are usable. Repair: restore "
                "the file, or move it aside and release its allocation "
                "(nova-slices release UUID)",
                path,
                reason,
                name,
            )
        return None

    def _persist(self, dom, running):
        if not self.test_driver:
            return
        path = self._persisted_path(dom.name())
        tmp = path + ".tmp"
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(dom.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE))
            # a crash must never leave a truncated file behind
            f.flush()
            os.fsync(f.fileno())
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
            faults.after("define")
            dom.create()
        except libvirt.libvirtError as exc:
            self.undefine(dom)
            raise HostError(
                f"libvirt could not start {dom.name()}: "
                f"{exc.get_error_message()}",
                code="guest.start-failed",
            ) from None
        self._persist(dom, running=True)
        faults.after("start")
        return dom

    def undefine(self, dom):
        name = dom.name()
        if dom.isActive():
            dom.destroy()
        faults.after("stop")
        dom.undefineFlags(
            libvirt.VIR_DOMAIN_UNDEFINE_NVRAM if not self.test_driver else 0
        )
        self._forget(name)

    def close(self):
        with contextlib.suppress(libvirt.libvirtError):
            self.conn.close()
