"""The mdevs this project created, kept under ``[DEFAULT] state_path``.

The kernel forgets every mdev at reboot and libvirt only knows the ones
that exist now, so neither can say which mdevs *we* made (and may
remove or recreate) as opposed to ones an operator made by hand.  One
small JSON file answers that; it is written atomically under a file lock
so that concurrent spawns and a restarted service all see the same list.
"""

import contextlib
import dataclasses
import datetime
import fcntl
import json
import os

from nova_slices.errors import HostError


@dataclasses.dataclass(frozen=True)
class CreatedMdev:
    uuid: str
    type: str
    parent: str
    created_at: str
    #: the guest it was first created for
    instance_uuid: str | None = None

    def to_dict(self):
        return dataclasses.asdict(self)


class MdevRegistry:
    FILENAME = "mdevs.json"

    def __init__(self, state_path):
        self.path = os.path.join(state_path, self.FILENAME)
        self._lock_path = self.path + ".lock"

    @contextlib.contextmanager
    def _locked(self):
        os.makedirs(os.path.dirname(self.path), exist_ok=True)
        with open(self._lock_path, "a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def _read(self):
        try:
            with open(self.path, encoding="utf-8") as f:
                data = json.load(f)
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as exc:
            raise self._unreadable(exc) from None
        return self._entries_of(data)

    def _unreadable(self, why):
        return HostError(
            f"the record of created mdevs {self.path} is unreadable "
            f"({why}); it lists mdevs nova-slices made, so it is not "
            "replaced: repair or remove it by hand",
            code="host.mdev-registry-unreadable",
            key="[DEFAULT] state_path",
            value=self.path,
        )

    def _entries_of(self, data):
        """The file's entries, or an error naming it: a record of the
        wrong shape must not become a crash or an empty list."""
        fields = {f.name for f in dataclasses.fields(CreatedMdev)} - {"uuid"}
        mdevs = data.get("mdevs", {}) if isinstance(data, dict) else None
        if not isinstance(mdevs, dict):
            raise self._unreadable('expected {"mdevs": {UUID: {...}}}')
        entries = {}
        for uuid, entry in mdevs.items():
            if (
                not isinstance(entry, dict)
                or not set(entry) <= fields
                or not all(
                    isinstance(v, str) or (k == "instance_uuid" and v is None)
                    for k, v in entry.items()
                )
            ):
                raise self._unreadable(
                    f"mdev {uuid}: expected an object of strings with keys "
                    + ", ".join(sorted(fields))
                )
            try:
                entries[uuid] = CreatedMdev(uuid=uuid, **entry)
            except TypeError as exc:
                raise self._unreadable(f"mdev {uuid}: {exc}") from None
        return entries

    def _write(self, entries):
        data = {
            "mdevs": {
                uuid: {k: v for k, v in entry.to_dict().items() if k != "uuid"}
                for uuid, entry in sorted(entries.items())
            }
        }
        tmp = self.path + ".tmp"
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(data, f, indent=1, sort_keys=True)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.path)

    def entries(self):
        with self._locked():
            return sorted(self._read().values(), key=lambda e: e.uuid)

    def add(self, uuid, mdev_type, parent, instance_uuid=None):
        entry = CreatedMdev(
            uuid,
            mdev_type,
            parent,
            datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
            instance_uuid,
        )
        with self._locked():
            entries = self._read()
            entries[uuid] = entry
            self._write(entries)
        return entry

    def forget(self, uuid):
        with self._locked():
            entries = self._read()
            if entries.pop(uuid, None) is not None:
                self._write(entries)
