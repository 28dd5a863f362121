"""nova_slices' compute driver, where Nova looks for drivers.

Nova loads ``[DEFAULT] compute_driver`` as ``nova.virt.<compute_driver>``,
so ``compute_driver = slices_ext.driver.LibvirtSlicesDriver`` finds this
package.  It ships no other file under ``nova/``.
"""
