"""nova-api's extra spec validators, extended by nova_slices.nova.extra_specs.

Nova finds the module through the ``nova.api.extra_spec_validators``
entry point and calls ``register()``; the module must not import Nova
before that.  The checks go through Nova's real validator, so they also
prove that Nova loads our entry point.
"""

import importlib.metadata
import subprocess
import sys

import pytest

pytestmark = [
    # EventletDeprecationWarning, by message: naming the class would make
    # pytest import eventlet (and warn) before the filter is in place
    pytest.mark.filterwarnings(r"ignore:\s*Eventlet is deprecated"),
    # oslo.policy/oslo.utils/oslo.service deprecations on Nova's import
    pytest.mark.filterwarnings("ignore::DeprecationWarning:oslo_policy"),
    pytest.mark.filterwarnings("ignore::DeprecationWarning:oslo_utils"),
    pytest.mark.filterwarnings("ignore::DeprecationWarning:oslo_service"),
]


@pytest.fixture(scope="module")
def validate():
    from nova.api.validation.extra_specs import validators

    return validators.validate


@pytest.fixture(scope="module")
def refused():
    from nova import exception

    return exception.ValidationError


def test_entry_point_is_declared():
    eps = importlib.metadata.entry_points(
        group="nova.api.extra_spec_validators"
    )
    [ep] = [ep for ep in eps if ep.name == "nova_slices"]
    assert ep.value == "nova_slices.nova.extra_specs"
    assert callable(ep.load().register)


def test_import_does_not_import_nova():
    code = (
        "import sys\n"
        "import nova_slices.nova.extra_specs\n"
        "bad = sorted(m for m in sys.modules "
        "if m == 'nova' or m.startswith('nova.'))\n"
        "assert not bad, bad\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr


def test_register_gives_nova_validators():
    from nova.api.validation.extra_specs import base

    from nova_slices.nova import extra_specs

    validators = extra_specs.register()
    assert [v.name for v in validators] == [
        "hw:numa_node.{num}",
        "nova_slices:slice_class",
    ]
    assert all(isinstance(v, base.ExtraSpecValidator) for v in validators)
    assert all(v.description for v in validators)


def test_nova_loaded_ours(validate):
    from nova.api.validation.extra_specs import validators

    assert "hw:numa_node.{num}" in validators.VALIDATORS
    assert "nova_slices:slice_class" in validators.VALIDATORS


@pytest.mark.parametrize(
    "name,value",
    [
        ("hw:numa_node.1", "3"),
        ("hw:numa_node.0", "0"),
        ("hw:numa_node.12", "7"),
        ("nova_slices:slice_class", "CUSTOM_SLICE_1_GPU_V1"),
        ("nova_slices:slice_class", "CUSTOM_A"),
    ],
)
def test_accepted(validate, name, value):
    validate(name, value)


@pytest.mark.parametrize(
    "name,value",
    [
        ("hw:numa_node.1", "-1"),
        ("hw:numa_node.1", "x"),
        ("hw:numa_node.1", ""),
        ("hw:numa_node.x", "1"),
        ("hw:numa_node.", "1"),
        ("nova_slices:slice_class", "custom_slice_1_gpu_v1"),
        ("nova_slices:slice_class", "SLICE_1"),
        ("nova_slices:slice_class", "CUSTOM_slice"),
        ("nova_slices:slice_class", ""),
        ("nova_slices:other", "CUSTOM_A"),
    ],
)
def test_refused(validate, refused, name, value):
    with pytest.raises(refused):
        validate(name, value)


def test_nova_keys_still_checked(validate, refused):
    """Adding ours did not loosen Nova's own keys."""
    validate("hw:numa_nodes", "2")
    with pytest.raises(refused):
        validate("hw:numa_nodes", "0")
    with pytest.raises(refused):
        validate("hw:numa_nodez", "2")
