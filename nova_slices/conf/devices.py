"""``[devices]`` and the per-type ``[mdev_<type>]`` groups.

The per-type groups are named after values of ``enabled_mdev_types``, so
they can only be registered after the configuration is read
(:func:`register_dynamic_opts`, as Nova does).  Unlike Nova's, they are
also listed for oslo-config-generator, under the placeholder group
``[mdev_$mdev_type]``, so the sample shows operators what they can set.
The legacy names are accepted: ``enabled_vgpu_types`` for
``enabled_mdev_types`` and ``[vgpu_<type>]`` for ``[mdev_<type>]``.
"""

from oslo_config import cfg

devices_group = cfg.OptGroup(
    "devices", title="Mediated devices (vGPUs and other mdevs)"
)

devices_opts = [
    cfg.ListOpt(
        "enabled_mdev_types",
        default=[],
        deprecated_name="enabled_vgpu_types",
        help="The mdev types this host offers, e.g. nvidia-35, "
        "nvidia-36. Each type may have a [mdev_<type>] group naming its "
        "parent devices; at most one type may leave its device_addresses "
        "empty, and it then takes every other device that supports it.",
    ),
    cfg.StrOpt(
        "mdev_sysfs_root",
        default="/sys",
        help="Where the kernel's sysfs is mounted. mdevs are created and "
        "removed through <root>/class/mdev_bus/<parent>/"
        "mdev_supported_types/<type>/create and <root>/bus/mdev/devices/"
        "<uuid>/remove. Only tests and containers with sysfs elsewhere "
        "change this.",
    ),
]

PLACEHOLDER_GROUP = "mdev_$mdev_type"


def _type_opts(mdev_type=None):
    legacy = f"vgpu_{mdev_type}" if mdev_type else "vgpu_$mdev_type"
    return [
        cfg.ListOpt(
            "device_addresses",
            default=[],
            deprecated_group=legacy,
            help="PCI addresses of the parent devices that offer this "
            "type (0000:84:00.0). Empty: every device that supports the "
            "type and no other type claims. The legacy group name "
            "[vgpu_<type>] is read too.",
        ),
        cfg.StrOpt(
            "mdev_class",
            default="VGPU",
            max_length=255,
            help="Placement resource class of this type's inventory: VGPU, "
            "or a custom class. A name without the CUSTOM_ prefix is "
            "prefixed and upper-cased (gpu_large -> CUSTOM_GPU_LARGE).",
        ),
        cfg.IntOpt(
            "max_instances",
            min=1,
            help="At most this many mdevs of the type per parent device "
            "(default: what the device offers).",
        ),
    ]


def register_opts(conf):
    conf.register_group(
        cfg.OptGroup(devices_group.name, title=devices_group.title)
    )
    conf.register_opts(devices_opts, group=devices_group.name)


def register_dynamic_opts(conf):
    """Register ``[mdev_<type>]`` for every enabled type (after parsing);
    return the names of those groups."""
    groups = dynamic_list_opts(conf)
    for group, opts in groups.items():
        for opt in opts:
            try:
                conf.register_opt(opt, group=group)
            except cfg.DuplicateOptError:
                pass  # registered by an earlier call
    return list(groups)


def dynamic_list_opts(conf):
    """``{"mdev_<type>": opts}`` for the types ``conf`` enables."""
    return {
        f"mdev_{mdev_type}": _type_opts(mdev_type)
        for mdev_type in conf.devices.enabled_mdev_types
    }


def ignored_legacy_keys(raw, enabled_types):
    """A warning for every key a legacy ``[vgpu_<type>]`` group sets that
    nothing reads, once per group and key, in the order written.

    ``raw`` is :func:`nova_slices.conf.check.raw_values`.  As in Nova 34
    (``nova/conf/devices.py``), the legacy group is read only for
    ``device_addresses``: ``mdev_class`` and ``max_instances`` there are
    silently ignored by oslo.config, and the type would get VGPU and no
    cap, which is not what the operator wrote.
    """
    legacy = {f"vgpu_{t}".lower(): t for t in enabled_types}
    options = [opt.dest for opt in _type_opts()]
    seen = set()
    out = []
    for path, section, key, _ in raw:
        mdev_type = legacy.get(section.lower())
        if mdev_type is None or key == "device_addresses":
            continue
        if (mdev_type, key) in seen:
            continue
        seen.add((mdev_type, key))
        if key in options:
            fix = f"move it to [mdev_{mdev_type}] (rename the group)"
        else:
            fix = (
                f"[mdev_{mdev_type}] has no such option either (it takes "
                + ", ".join(options)
                + ")"
            )
        out.append(
            f"[vgpu_{mdev_type}] {key} (in {path}) is ignored: legacy "
            f"[vgpu_<type>] groups take only device_addresses; {fix}"
        )
    return out


def list_opts():
    return {devices_group: devices_opts, PLACEHOLDER_GROUP: _type_opts()}
