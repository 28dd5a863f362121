"""Options: registration, the sample generator, the embedded default."""

import importlib.metadata
import os
import subprocess
import sys

from oslo_config import cfg

from nova_slices import data
from nova_slices.cmd.runtime import default_config_files, load_conf
from nova_slices.conf import opts

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(__file__)))


def test_entry_points_are_declared():
    eps = importlib.metadata.entry_points()
    names = {ep.name: ep.value for ep in eps.select(group="oslo.config.opts")}
    assert names["nova_slices"] == "nova_slices.conf.opts:list_opts"
    scripts = {ep.name: ep.value for ep in eps.select(group="console_scripts")}
    assert scripts["nova-slices"] == "nova_slices.cmd.main:main"


def test_list_opts_covers_every_group():
    groups = {
        str(group): [o.dest for o in options]
        for group, options in opts.list_opts()
    }
    assert {"DEFAULT", "libvirt", "placement"} <= set(groups)
    assert "slice_spec" in groups["libvirt"]
    assert {"mode", "auth_type", "valid_interfaces"} <= set(
        groups["placement"]
    )


def test_generator_writes_the_sample(tmp_path):
    out = tmp_path / "sample.conf"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "oslo_config.generator",
            "--namespace",
            "nova_slices",
            "--output-file",
            str(out),
        ],
        check=True,
        capture_output=True,
    )
    text = out.read_text()
    for needle in (
        "[mdev_$mdev_type]",
        "#mdev_class = VGPU",
        "#enabled_mdev_types =",
        "[libvirt]",
        "#slice_spec =",
        "[placement]",
        "#mode = embedded",
        "#state_path =",
    ):
        assert needle in text
    shipped = os.path.join(ROOT, "etc", "nova-slices.conf.sample")
    assert os.path.exists(shipped), "run tox -e genconfig"


def test_embedded_default_is_the_shipped_bundle(monkeypatch):
    # a machine with no /etc/nova-slices/ or ~/.nova-slices/ configuration
    monkeypatch.setattr(cfg, "find_config_files", lambda **kw: [])
    files = default_config_files()
    assert files == [os.path.join(data.host_bundle(), "nova-slices.conf")]
    conf = load_conf()
    assert len(conf.libvirt.slice_spec) == 11
    assert conf.placement.mode == "embedded"
    assert conf.libvirt.connection_uri == ""


def test_state_path_is_made_absolute_where_it_is_read(tmp_path, monkeypatch):
    """Paths under state_path go into domain XML, which takes only
    absolute paths: a relative value from a file or an override is
    resolved against the working directory once, when read."""
    monkeypatch.chdir(tmp_path)
    conf_file = tmp_path / "n.conf"
    conf_file.write_text("[DEFAULT]\nstate_path = from-file\n")
    assert load_conf([conf_file]).state_path == str(tmp_path / "from-file")
    conf = load_conf([conf_file], overrides={(None, "state_path"): "flag"})
    assert conf.state_path == str(tmp_path / "flag")
