"""Test plumbing: die at a named step of a spawn or destroy, as kill -9 does.

The crash tests start a real ``nova-slices`` with
``NOVA_SLICES_FAULT=after:STEP`` and check that the next command brings
Placement and libvirt back into agreement.  Without the variable (always,
outside those tests) a step is one environment lookup.  The steps, in
order:

spawn
    ``claim`` (the allocation is written), ``mdev`` (an mdev is made in
    the kernel but not yet recorded), ``bind`` (every device bound and
    recorded), ``define`` (the domain is defined and persisted, not
    started), ``start`` (it runs, the spawn's journal entry still open)
destroy
    ``stop`` (the domain is stopped, still defined), ``undefine`` (it is
    gone, the allocation still held), ``release`` (the allocation is
    deleted, the destroy's journal entry still open)
"""

import os
import signal

ENV = "NOVA_SLICES_FAULT"


def after(step):
    """Kill this process with SIGKILL if the tests asked to die here."""
    if os.environ.get(ENV) == f"after:{step}":
        os.kill(os.getpid(), signal.SIGKILL)
