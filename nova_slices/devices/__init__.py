"""Host devices offered to guests: mediated devices and PCI devices."""
