"""``compute_driver = slices_ext.driver.LibvirtSlicesDriver``."""

from nova_slices.nova.driver import LibvirtSlicesDriver

__all__ = ["LibvirtSlicesDriver"]
