"""Creating and removing mediated devices through the kernel's sysfs.

The kernel's interface (Documentation/driver-api/vfio-mediated-device):

* create: write a UUID to
  ``/sys/class/mdev_bus/<parent>/mdev_supported_types/<type>/create``;
* the mdev then appears as ``/sys/bus/mdev/devices/<uuid>``, whose
  ``mdev_type`` links to the type directory and whose real path lies
  under the parent device;
* remove: write ``1`` to ``/sys/bus/mdev/devices/<uuid>/remove``.

``root`` is ``/sys`` in production; tests point the same code at a
directory laid out like sysfs, with a stand-in for the kernel that reacts
to the writes.  Nothing else in the package touches sysfs.
"""

import dataclasses
import os
import time

from nova_slices.errors import HostError


@dataclasses.dataclass(frozen=True)
class SysfsMdev:
    uuid: str
    type: str
    parent_address: str


class SysfsMdevBackend:
    def __init__(self, root="/sys", timeout=10.0, poll=0.01):
        self.root = root
        self.timeout = timeout
        self.poll = poll

    def _type_dir(self, parent, mdev_type):
        return os.path.join(
            self.root,
            "class",
            "mdev_bus",
            parent,
            "mdev_supported_types",
            mdev_type,
        )

    def _device_dir(self, uuid):
        return os.path.join(self.root, "bus", "mdev", "devices", uuid)

    def _check_type_dir(self, parent, mdev_type):
        tdir = self._type_dir(parent, mdev_type)
        if not os.path.isdir(tdir):
            raise HostError(
                f"mdevs of type {mdev_type} cannot be made on {parent}: "
                f"{tdir} does not exist ([devices] mdev_sysfs_root = "
                f"{self.root!r}). The device's driver is not loaded or does "
                "not offer the type; libvirt's test driver (the embedded "
                "default) has no kernel to make mdevs in",
                code="host.mdev-type-missing",
                key="[devices] mdev_sysfs_root",
                value=tdir,
            )

    def available(self, parent, mdev_type):
        self._check_type_dir(parent, mdev_type)
        path = os.path.join(
            self._type_dir(parent, mdev_type), "available_instances"
        )
        try:
            with open(path) as f:
                return int(f.read().strip())
        except (OSError, ValueError) as exc:
            raise HostError(
                f"cannot read {path}: {exc}",
                code="host.mdev-sysfs",
                value=path,
            ) from None

    def create(self, parent, mdev_type, uuid):
        """Create an mdev and wait until the kernel shows it."""
        self._check_type_dir(parent, mdev_type)
        path = os.path.join(self._type_dir(parent, mdev_type), "create")
        try:
            with open(path, "w") as f:
                f.write(uuid)
        except OSError as exc:
            raise HostError(
                f"creating mdev {uuid} of type {mdev_type} on {parent} "
                f"failed: {path}: {exc.strerror or exc}",
                code="host.mdev-create-failed",
                value=uuid,
            ) from None
        deadline = time.monotonic() + self.timeout
        while not os.path.isdir(self._device_dir(uuid)):
            if time.monotonic() > deadline:
                raise HostError(
                    f"mdev {uuid} did not appear under "
                    f"{self._device_dir(uuid)} within {self.timeout} s",
                    code="host.mdev-create-failed",
                    value=uuid,
                )
            time.sleep(self.poll)
        return SysfsMdev(uuid, mdev_type, parent)

    def remove(self, uuid):
        path = os.path.join(self._device_dir(uuid), "remove")
        try:
            with open(path, "w") as f:
                f.write("1")
        except OSError as exc:
            raise HostError(
                f"removing mdev {uuid} failed: {path}: {exc.strerror or exc}",
                code="host.mdev-remove-failed",
                value=uuid,
            ) from None
        deadline = time.monotonic() + self.timeout
        while os.path.isdir(self._device_dir(uuid)):
            if time.monotonic() > deadline:
                raise HostError(
                    f"mdev {uuid} is still present after remove",
                    code="host.mdev-remove-failed",
                    value=uuid,
                )
            time.sleep(self.poll)

    def list(self):
        """The mdevs the kernel has now."""
        base = os.path.join(self.root, "bus", "mdev", "devices")
        out = []
        if not os.path.isdir(base):
            return out
        for uuid in sorted(os.listdir(base)):
            device = os.path.join(base, uuid)
            type_link = os.path.realpath(os.path.join(device, "mdev_type"))
            parent = os.path.basename(
                os.path.dirname(os.path.realpath(device))
            )
            out.append(SysfsMdev(uuid, os.path.basename(type_link), parent))
        return out
