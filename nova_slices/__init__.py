"""NUMA, device and slice placement for Nova-style libvirt compute hosts."""
