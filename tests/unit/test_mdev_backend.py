"""The sysfs mdev backend, on a directory laid out like sysfs."""

import pytest

from nova_slices.devices.mdev_backend import SysfsMdev, SysfsMdevBackend
from nova_slices.errors import HostError
from tests.fixtures.fake_sysfs import FakeSysfs

GPU = "0000:84:00.0"
U1 = "4b20d080-1b54-4048-85b3-a6a62d165c01"
U2 = "4b20d080-1b54-4048-85b3-a6a62d165c02"


@pytest.fixture
def sysfs(tmp_path):
    with FakeSysfs(tmp_path, {GPU: {"nvidia-35": 2, "nvidia-36": 1}}) as fs:
        yield fs


def test_create_list_remove(sysfs):
    backend = SysfsMdevBackend(sysfs.root, timeout=5)
    assert backend.available(GPU, "nvidia-35") == 2
    assert backend.create(GPU, "nvidia-35", U1) == SysfsMdev(
        U1, "nvidia-35", GPU
    )
    backend.create(GPU, "nvidia-36", U2)
    assert backend.list() == [
        SysfsMdev(U1, "nvidia-35", GPU),
        SysfsMdev(U2, "nvidia-36", GPU),
    ]
    assert backend.available(GPU, "nvidia-35") == 1
    backend.remove(U1)
    assert backend.list() == [SysfsMdev(U2, "nvidia-36", GPU)]
    assert backend.available(GPU, "nvidia-35") == 2


def test_unknown_type_is_a_clear_error(sysfs):
    backend = SysfsMdevBackend(sysfs.root, timeout=1)
    with pytest.raises(HostError) as info:
        backend.create(GPU, "nvidia-99", U1)
    assert info.value.code == "host.mdev-type-missing"
    assert info.value.key == "[devices] mdev_sysfs_root"
    assert "nvidia-99" in info.value.message
    with pytest.raises(HostError) as info:
        backend.available("0000:99:00.0", "nvidia-35")
    assert info.value.code == "host.mdev-type-missing"


def test_kernel_refusal_times_out_with_a_clear_error(sysfs):
    backend = SysfsMdevBackend(sysfs.root, timeout=0.3)
    backend.create(GPU, "nvidia-36", U1)
    with pytest.raises(HostError) as info:
        backend.create(GPU, "nvidia-36", U2)  # none left: kernel refuses
    assert info.value.code == "host.mdev-create-failed"
    assert "did not appear" in info.value.message


def test_removing_an_unknown_mdev(sysfs):
    backend = SysfsMdevBackend(sysfs.root, timeout=1)
    with pytest.raises(HostError) as info:
        backend.remove(U1)
    assert info.value.code == "host.mdev-remove-failed"
