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
            raise HostError(
                f"the record of created mdevs {self.path} is unreadable "
                f"({exc}); it lists mdevs nova-slices made, so it is not "
                "replaced: repair or remove it by hand",
                code="host.mdev-registry-unreadable",
                value=self.path,
            ) from None
        return {
            uuid: CreatedMdev(uuid=uuid, **fields)
            for uuid, fields in data.get("mdevs", {}).items()
        }

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
