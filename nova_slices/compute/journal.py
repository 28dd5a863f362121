"""Which spawns and destroys are in progress on this host (the edge).

A spawn writes its Placement allocation before it defines the domain,
and a destroy undefines the domain before it deletes the allocation.  A
process killed in between leaves an allocation with no guest, and nothing
in Placement or libvirt says whether its owner is still at work (a slice
spawn claims outside the host lock) or dead.  So each one opens an entry
here, ``<state_path>/intents/<consumer>.json``, before its first write
and keeps an exclusive ``flock`` on it until its last; it removes the
entry when it is done, or after it undid its claim.  The kernel drops
the lock of a dead process, even after SIGKILL, so an entry whose lock
can be taken belongs to a spawn or destroy that will never finish, and
one whose lock is held to one in progress: the reconciler releases the
first kind's allocation at once and never touches the second's.

Allocations that no entry explains (written by an older version, or by
something else) have no known age: the reconciler records when it first
saw each (``orphan-allocations.json``) and releases it only once
``[DEFAULT] orphan_allocation_grace_seconds`` have passed.
"""

import contextlib
import dataclasses
import fcntl
import json
import logging
import os
import tempfile
import time
import uuid as uuidlib

from nova_slices.errors import GuestError

LOG = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class Intent:
    """One journal entry, as the reconciler sees it."""

    consumer: str
    op: str  # "spawn", "destroy" ("unknown" for an unreadable entry)
    name: str | None
    started_at: float
    pid: int | None
    #: its process still holds the lock: the operation is in progress
    live: bool


def canonical(consumer):
    """The consumer's uuid in canonical form, or None if it is not one."""
    try:
        return str(uuidlib.UUID(str(consumer)))
    except ValueError:
        return None


class Entry:
    """An open journal entry; :meth:`done` removes it, lock still held."""

    def __init__(self, path, fd):
        self.path = path
        self.fd = fd

    def done(self):
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path)


class Journal:
    DIRNAME = "intents"
    SEEN = "orphan-allocations.json"

    def __init__(self, state_path):
        self.dir = os.path.join(state_path, self.DIRNAME)
        self.seen_path = os.path.join(state_path, self.SEEN)

    def _path(self, consumer):
        return os.path.join(self.dir, consumer + ".json")

    @contextlib.contextmanager
    def entry(self, op, consumer, name):
        """Hold an entry for ``op`` on ``consumer`` for the block.

        The entry stays on disk when the block ends without
        :meth:`Entry.done` (the reconciler then finishes the job).
        """
        key = canonical(consumer)
        if key is None:
            raise GuestError(
                f"instance uuid {consumer!r} is not a UUID: Placement "
                "names consumers by UUID, e.g. "
                "5a178fdb-cd59-4dee-a4cc-71472229c4a3",
                code="guest.uuid-invalid",
                key="instance_uuid",
                value=consumer,
            ).with_status(2)
        os.makedirs(self.dir, exist_ok=True)
        current = self._probe(self._path(key))
        if current is not None and current.live:
            raise GuestError(
                f"consumer {key} is in use by a {current.op} of "
                f"{current.name} in progress (process {current.pid}); "
                "wait for it to finish",
                code="guest.consumer-busy",
                key="instance_uuid",
                value=key,
            )
        fd, tmp = self._locked_temporary(key)
        try:
            body = {
                "op": op,
                "name": name,
                "started_at": time.time(),
                "pid": os.getpid(),
            }
            os.write(fd, json.dumps(body).encode())
            os.fsync(fd)
            os.replace(tmp, self._path(key))
            yield Entry(self._path(key), fd)
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            os.close(fd)

    def _locked_temporary(self, key):
        """(fd, path) of a new temporary entry, locked under its name.

        ``mkstemp`` makes the file visible before it can be locked, and
        another process's :meth:`remove_stale_temporaries` may take that
        moment to remove it as a dead writer's; once locked, the name is
        checked to still be this file, and a new one is made if not.
        """
        while True:
            fd, tmp = tempfile.mkstemp(
                prefix=f".{key}.", suffix=".tmp", dir=self.dir
            )
            fcntl.flock(fd, fcntl.LOCK_EX)
            try:
                if os.stat(tmp).st_ino == os.fstat(fd).st_ino:
                    return fd, tmp
            except FileNotFoundError:
                pass
            os.close(fd)

    def _probe(self, path):
        """The Intent at ``path``, or None when there is none."""
        try:
            fd = os.open(path, os.O_RDONLY)
        except FileNotFoundError:
            return None
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
                live = False
            except BlockingIOError:
                live = True
            try:
                # replaced or removed since we opened it: not this entry
                if os.fstat(fd).st_ino != os.stat(path).st_ino:
                    return None
            except FileNotFoundError:
                return None
            raw = os.read(fd, 65536)
            mtime = os.fstat(fd).st_mtime
        finally:
            os.close(fd)
        consumer = os.path.basename(path)[: -len(".json")]
        try:
            body = json.loads(raw)
            return Intent(
                consumer,
                str(body["op"]),
                body.get("name"),
                float(body["started_at"]),
                body.get("pid"),
                live,
            )
        except (ValueError, KeyError, TypeError):
            LOG.warning(
                "journal entry %s is unreadable; treating it as an "
                "operation of unknown kind on consumer %s",
                path,
                consumer,
            )
            return Intent(consumer, "unknown", None, mtime, None, live)

    def entries(self):
        """Every entry (Intents), sorted by consumer."""
        try:
            names = sorted(os.listdir(self.dir))
        except FileNotFoundError:
            return ()
        out = []
        for entry in names:
            if not entry.endswith(".json") or canonical(entry[:-5]) is None:
                continue
            intent = self._probe(os.path.join(self.dir, entry))
            if intent is not None:
                out.append(intent)
        return tuple(out)

    def get(self, consumer):
        key = canonical(consumer)
        return self._probe(self._path(key)) if key else None

    def forget(self, consumer):
        """Remove a dead entry (a live one is left alone)."""
        path = self._path(canonical(consumer))
        with contextlib.suppress(FileNotFoundError):
            fd = os.open(path, os.O_RDONLY)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                if os.fstat(fd).st_ino == os.stat(path).st_ino:
                    os.unlink(path)
            except BlockingIOError:
                pass
            finally:
                os.close(fd)

    def remove_stale_temporaries(self):
        """Half-written entries of processes killed while writing them."""
        try:
            names = os.listdir(self.dir)
        except FileNotFoundError:
            return
        for entry in names:
            if entry.startswith(".") and entry.endswith(".tmp"):
                path = os.path.join(self.dir, entry)
                with contextlib.suppress(FileNotFoundError):
                    fd = os.open(path, os.O_RDONLY)
                    try:
                        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                        os.unlink(path)
                    except BlockingIOError:
                        pass
                    finally:
                        os.close(fd)

    # -- when allocations no entry explains were first seen -------------
    def load_seen(self):
        """{consumer: first seen (epoch seconds)}; callers hold the host
        lock."""
        try:
            with open(self.seen_path, encoding="utf-8") as f:
                data = json.load(f)
            return {str(k): float(v) for k, v in data.items()}
        except FileNotFoundError:
            return {}
        except (OSError, ValueError, TypeError, AttributeError) as exc:
            # only ages are lost: their grace periods start again
            LOG.warning(
                "%s is unreadable (%s); the grace period of allocations "
                "without a guest starts again",
                self.seen_path,
                exc,
            )
            return {}

    def save_seen(self, seen):
        text = json.dumps(dict(sorted(seen.items())), indent=1)
        try:
            with open(self.seen_path, encoding="utf-8") as f:
                if f.read() == text:
                    return  # unchanged: no write
        except (OSError, UnicodeDecodeError):
            pass
        os.makedirs(os.path.dirname(self.seen_path), exist_ok=True)
        tmp = self.seen_path + ".tmp"
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.seen_path)


__all__ = ["Entry", "Intent", "Journal", "canonical"]
