"""Guests as both kinds of host show them, and who owns their claims.

Values only, shared by the slice and the dynamic strategy and read by the
shells.
"""

import dataclasses

#: who owns allocations made from the command line
CLI_PROJECT = "4e6f7661-536c-6963-6573-50726f6a6563"
CLI_USER = "4e6f7661-536c-6963-6573-557365720000"


@dataclasses.dataclass(frozen=True)
class Owner:
    """The project and user a guest's Placement allocation is made for."""

    project_id: str = CLI_PROJECT
    user_id: str = CLI_USER


#: allocations made from the ``nova-slices`` command
CLI_OWNER = Owner()


@dataclasses.dataclass(frozen=True)
class GuestView:
    name: str
    instance_uuid: str | None
    slice_name: str | None
    resource_class: str | None
    state: str
    allocations: dict
    #: {"pci": [addresses], "mdevs": [uuids]} bound at spawn
    devices: dict = dataclasses.field(default_factory=dict)
    #: a dynamic guest's flavor {"vcpus", "memory_mb", "disk_gb"}
    flavor: dict | None = None
    #: a dynamic guest's NUMA cells as the fitter placed them
    cells: tuple = ()
    #: a slice guest's devices at spawn: where each is and why it was
    #: taken (nova_slices.slices.locality); None: nothing to explain
    device_locality: dict | None = None

    def to_dict(self):
        """The ``spawn``/``list`` JSON form of one guest (a contract;
        ``device_locality`` only in spawn's answer on a slice host that
        gave devices)."""
        out = {
            "name": self.name,
            "instance_uuid": self.instance_uuid,
            "slice": self.slice_name,
            "resource_class": self.resource_class,
            "state": self.state,
            "allocations": self.allocations,
            "devices": self.devices,
            "flavor": self.flavor,
            "cells": list(self.cells),
        }
        if self.device_locality is not None:
            out["device_locality"] = self.device_locality
        return out


def devices_view(binding):
    if binding is None:
        return {"pci": [], "mdevs": []}
    return {"pci": list(binding.pci), "mdevs": list(binding.mdev_uuids)}
