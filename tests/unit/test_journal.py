"""The journal of spawns and destroys in progress, on real files and locks.

The one thing it must get right: an entry whose process runs is live, and
one whose process died (even by SIGKILL) is not, whatever its age.
"""

import json
import os
import signal
import subprocess
import sys
import uuid

import pytest

from nova_slices.compute.journal import Journal
from nova_slices.errors import GuestError

HOLDER = """
import sys, time
from nova_slices.compute.journal import Journal
with Journal(sys.argv[1]).entry("spawn", sys.argv[2], "g"):
    print("ready", flush=True)
    time.sleep(60)
"""


@pytest.fixture
def journal(tmp_path):
    return Journal(str(tmp_path))


def test_an_entry_is_live_while_held_and_gone_when_done(journal):
    consumer = str(uuid.uuid4())
    with journal.entry("spawn", consumer, "g") as entry:
        (seen,) = journal.entries()
        assert (seen.consumer, seen.op, seen.name, seen.live) == (
            consumer,
            "spawn",
            "g",
            True,
        )
        assert seen.pid == os.getpid()
        journal.forget(consumer)  # a live entry is never removed
        assert journal.get(consumer).live
        entry.done()
        assert journal.entries() == ()


def test_an_entry_left_without_done_is_dead(journal):
    consumer = str(uuid.uuid4())
    with journal.entry("destroy", consumer, "g"):
        pass
    (seen,) = journal.entries()
    assert (seen.op, seen.live) == ("destroy", False)
    journal.forget(consumer)
    assert journal.entries() == ()


def test_the_entry_of_a_process_killed_by_sigkill_is_dead(tmp_path, journal):
    consumer = str(uuid.uuid4())
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(tmp_path), consumer],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout.readline().strip() == "ready"
        assert journal.get(consumer).live
        with pytest.raises(GuestError) as exc:
            with journal.entry("spawn", consumer, "other"):
                pass
        assert exc.value.code == "guest.consumer-busy"
        assert consumer in exc.value.message and str(proc.pid) in (
            exc.value.message
        )
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
    seen = journal.get(consumer)
    assert (seen.live, seen.pid, seen.name) == (False, proc.pid, "g")
    # a dead entry is replaced by the next operation on the consumer
    with journal.entry("destroy", consumer, "g2"):
        assert journal.get(consumer).op == "destroy"


@pytest.mark.parametrize("consumer", ["", "not-a-uuid", "../../etc/x"])
def test_a_consumer_that_is_not_a_uuid_is_refused(tmp_path, journal, consumer):
    with pytest.raises(GuestError) as exc:
        with journal.entry("spawn", consumer, "g"):
            pass
    assert (exc.value.code, exc.value.exit_status) == ("guest.uuid-invalid", 2)
    assert exc.value.value == consumer and repr(consumer) in exc.value.message
    assert not (tmp_path / "etc").exists()


def test_half_written_and_unreadable_entries(tmp_path, journal):
    os.makedirs(journal.dir)
    stale = os.path.join(journal.dir, f".{uuid.uuid4()}.abc.tmp")
    open(stale, "w").close()
    consumer = str(uuid.uuid4())
    with open(os.path.join(journal.dir, consumer + ".json"), "w") as f:
        f.write('{"op": "spa')
    journal.remove_stale_temporaries()
    assert not os.path.exists(stale)
    (seen,) = journal.entries()  # hand-broken: of unknown kind, dead
    assert (seen.consumer, seen.op, seen.live) == (consumer, "unknown", False)


def test_first_sightings_round_trip_and_survive_a_broken_file(journal):
    assert journal.load_seen() == {}
    journal.save_seen({"u": 12.5})
    assert journal.load_seen() == {"u": 12.5}
    with open(journal.seen_path, "w") as f:
        f.write("[1, 2")
    assert journal.load_seen() == {}  # grace periods start again
    journal.save_seen({})
    assert json.load(open(journal.seen_path)) == {}
