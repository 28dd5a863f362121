"""``nova-slices``: one entry point, one subcommand per job.

Exit status: 0 success; 1 a well-formed request that cannot be satisfied;
2 invalid input (configuration, flags).  Errors of ours are printed as
messages (or ``{"errors": [...]}`` with ``--format json``), never as
tracebacks.
"""

import argparse
import errno
import importlib
import logging
import os
import sys

from nova_slices.cmd import generate_args
from nova_slices.cmd.output import emit_errors
from nova_slices.errors import ConfigError, NovaSlicesError, RequestError


class _Parser(argparse.ArgumentParser):
    def error(self, message):
        self.print_usage(sys.stderr)
        sys.stderr.write(f"{self.prog}: error: {message}\n")
        sys.exit(2)


def _key_value(text):
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not KEY=VALUE (e.g. hw:numa_nodes=2)"
        )
    return key, value


def _pairs_to_dicts(args):
    """The repeatable KEY=VALUE flags as the dicts Nova's API takes.

    A flavor's extra specs and an image's properties are dicts, so a key
    given twice has no one meaning: refused, naming it, rather than the
    last one silently winning.
    """
    for flag in ("--extra-spec", "--image-property"):
        dest = flag[2:].replace("-", "_")
        pairs = getattr(args, dest, None)
        if pairs is None:
            continue
        seen = {}
        for key, value in pairs:
            seen.setdefault(key, []).append(value)
        for key, values in seen.items():
            if len(values) > 1:
                raise RequestError(
                    f"{flag} {key} is given {len(values)} times "
                    f"({', '.join(map(repr, values))}): give each key once",
                    code="request.key-repeated",
                    key=key,
                    value=values,
                )
        setattr(args, dest, {k: v[0] for k, v in seen.items()})


def _check_arguments(args, argv):
    """Refuse what argparse lets through: bytes that are not UTF-8, and
    flags the chosen command would silently ignore."""
    for arg in argv:
        try:
            arg.encode("utf-8")
        except UnicodeEncodeError:
            raise RequestError(
                f"argument {arg!r} is not UTF-8 text",
                code="cli.argument-not-utf8",
                key="argv",
                value=arg.encode("utf-8", "backslashreplace").decode(),
            ) from None
    if getattr(args, "nodedev_xml", None) and not args.capabilities_xml:
        raise RequestError(
            "--nodedev-xml is only read with --capabilities-xml (without "
            "it the configured host's own devices are used): give both, or "
            "neither",
            code="cli.flag-not-applicable",
            key="--nodedev-xml",
            value=args.nodedev_xml,
        )
    if args.command == "demo":
        # the demo always runs in a fresh temporary state directory, and
        # --host brings its bundle's own configuration
        ignored = [("--state-path", args.state_path)]
        if args.host:
            ignored += [
                ("--config-file", args.config_file),
                ("--config-dir", args.config_dir),
            ]
        for flag, value in ignored:
            if value:
                raise RequestError(
                    f"demo does not use {flag}: it runs in a fresh "
                    "temporary state directory"
                    + (
                        ", on the configuration of the --host bundle"
                        if args.host
                        else ""
                    ),
                    code="cli.flag-not-applicable",
                    key=flag,
                    value=value,
                )


def add_request_args(p):
    """The flavor and image flags shared by ``request`` and ``fit``."""
    p.add_argument("--vcpus", type=int, required=True)
    p.add_argument("--memory-mb", type=int, required=True)
    _add_pairs(p, "--extra-spec", "flavor extra spec (repeatable)")
    _add_pairs(p, "--image-property", "image property (repeatable)")


def _add_pairs(p, flag, help_text):
    """A repeatable KEY=VALUE flag (extra specs, image properties)."""
    p.add_argument(
        flag,
        action="append",
        default=[],
        type=_key_value,
        metavar="KEY=VALUE",
        help=help_text,
    )


def _add_host_file_args(p):
    p.add_argument(
        "--capabilities-xml",
        metavar="FILE",
        help="read this capabilities file instead of the configured host "
        "(the host's [compute] CPU sets then do not apply)",
    )
    p.add_argument(
        "--nodedev-xml",
        action="append",
        default=[],
        metavar="FILE",
        help="with --capabilities-xml: node device XML (a <device>, or a "
        "test-driver <node> file); repeatable",
    )


def _add_format(p):
    p.add_argument(
        "--format",
        choices=("text", "json"),
        default="text",
        help="output format (json: a stable schema)",
    )


def build_parser():
    parser = _Parser(
        prog="nova-slices",
        description="NUMA, device and slice placement for a libvirt "
        "compute host. With no configuration it runs against the embedded "
        "default: the shipped 8-GPU host bundle in libvirt's test driver "
        "and an embedded Placement service.",
    )
    parser.add_argument(
        "--config-file",
        action="append",
        default=[],
        metavar="PATH",
        help="nova.conf-style file (repeatable; later files win)",
    )
    parser.add_argument(
        "--config-dir", action="append", default=[], metavar="DIR"
    )
    parser.add_argument(
        "--state-path", metavar="DIR", help="override [DEFAULT] state_path"
    )
    parser.add_argument(
        "--debug", action="store_true", help="log at DEBUG to stderr"
    )
    sub = parser.add_subparsers(
        dest="command", required=True, parser_class=_Parser
    )

    p = sub.add_parser(
        "validate",
        help="check configuration, slice "
        "templates and host; exit 2 on problems",
    )
    _add_format(p)
    p.set_defaults(func="inspect:validate")

    p = sub.add_parser(
        "topology",
        help="the host's NUMA cells, CPUs, memory, page pools and devices",
    )
    _add_host_file_args(p)
    p.add_argument("--format", choices=("text", "json", "svg"), default="text")
    p.set_defaults(func="inspect:topology")

    p = sub.add_parser(
        "request",
        help="validate a flavor (and image) and print the normalized guest "
        "request",
    )
    add_request_args(p)
    _add_format(p)
    p.set_defaults(func="inspect:request")

    p = sub.add_parser(
        "fit",
        help="fit a flavor (and image) onto the host's NUMA cells, or say "
        "why it does not fit (exit 1)",
    )
    add_request_args(p)
    _add_host_file_args(p)
    p.add_argument(
        "--usage-json",
        metavar="FILE",
        help='what is already used: {"cells": {"3": {"pinned_cpus": [24], '
        '"cpu_usage": 0, "memory_mb": 4096, "pages": {"2048": 1024}}}, '
        '"pci_devices_in_use": ["0000:3b:00.0"]}',
    )
    _add_format(p)
    p.set_defaults(func="inspect:fit")

    p = sub.add_parser(
        "sync", help="report this host's providers to Placement"
    )
    _add_format(p)
    p.set_defaults(func="report:sync")

    p = sub.add_parser(
        "providers",
        help="the provider tree with inventories, usage and traits",
    )
    _add_format(p)
    p.set_defaults(func="report:providers")

    p = sub.add_parser(
        "flavor-specs", help="the flavor extra specs of each slice class"
    )
    _add_format(p)
    p.set_defaults(func="report:flavor_specs")

    p = sub.add_parser(
        "spawn",
        help="start a guest: on a slice (--slice-class) on a host with "
        "slices, else NUMA-placed and pinned from a flavor (--vcpus, "
        "--memory-mb, extra specs, image properties)",
    )
    p.add_argument("name")
    p.add_argument(
        "--slice-class",
        metavar="RC",
        help="hosts with slices: the slice resource class, e.g. "
        "CUSTOM_SLICE_4_GPU_V1",
    )
    p.add_argument(
        "--vcpus", type=int, help="hosts without slices: the flavor's vCPUs"
    )
    p.add_argument(
        "--memory-mb",
        type=int,
        help="hosts without slices: the flavor's memory in MiB",
    )
    p.add_argument(
        "--disk-gb",
        type=int,
        help="hosts without slices: the flavor's root disk in GiB "
        "(DISK_GB; default 1, 0 for none)",
    )
    _add_pairs(
        p,
        "--image-property",
        "hosts without slices: an image property such as "
        "hw_cpu_policy=dedicated (repeatable)",
    )
    p.add_argument("--uuid", help="instance uuid (default: a new one)")
    p.add_argument(
        "--network",
        action="append",
        default=[],
        metavar="NAME",
        help="attach a virtio NIC on this libvirt network (repeatable)",
    )
    _add_pairs(
        p,
        "--extra-spec",
        "a flavor extra spec (repeatable). With a slice: devices "
        "only, resources[SUFFIX]:RC=N and trait[SUFFIX]:NAME=required|"
        "forbidden, e.g. resources_NIC:CUSTOM_NIC_VF=1. Without slices: "
        "every key Nova reads, e.g. hw:cpu_policy=dedicated, "
        "hw:numa_nodes=2, pci_passthrough:alias=a100:1",
    )
    _add_format(p)
    p.set_defaults(func="guests:spawn")

    p = sub.add_parser(
        "destroy", help="stop and undefine a guest and delete its allocations"
    )
    p.add_argument("name")
    _add_format(p)
    p.set_defaults(func="guests:destroy")

    p = sub.add_parser(
        "release",
        help="delete one consumer's allocation on this host's providers "
        "(an allocation without a guest); refused while a guest here uses "
        "it, unless --force",
    )
    p.add_argument("consumer", metavar="CONSUMER_UUID")
    p.add_argument(
        "--force",
        action="store_true",
        help="release it even though a guest here still uses it (the next "
        "sync claims the guest's exact share again)",
    )
    _add_format(p)
    p.set_defaults(func="guests:release")

    p = sub.add_parser(
        "list",
        help="guests, their slices and allocations, "
        "and any disagreement between libvirt and Placement",
    )
    _add_format(p)
    p.set_defaults(func="guests:list_guests")

    p = sub.add_parser(
        "usage",
        help="hosts without slices: the pCPUs, memory, pages and devices "
        "the guests use, rebuilt from libvirt (the fit --usage-json "
        "format)",
    )
    _add_format(p)
    p.set_defaults(func="guests:usage")

    p = sub.add_parser(
        "mdevs",
        help="the mdevs nova-slices created, whether the kernel has them "
        "and which guest uses them",
    )
    p.add_argument(
        "--recreate",
        action="store_true",
        help="first create again the mdevs of defined guests that the "
        "kernel lost (after a host reboot)",
    )
    _add_format(p)
    p.set_defaults(func="guests:mdevs")

    generate_args.add_parser(sub, _add_format)

    p = sub.add_parser(
        "demo",
        help="a tour on the embedded default host, or on another host "
        "bundle (--host)",
    )
    p.add_argument(
        "--host",
        metavar="BUNDLE",
        help="a shipped host bundle by name (gpu8-2s, nfv-snc-2s) or a "
        "bundle directory (capabilities.xml, node.xml, nova-slices.conf); "
        "its nova-slices.conf is the demo's configuration",
    )
    p.add_argument(
        "--keep", action="store_true", help="keep the demo's state directory"
    )
    p.set_defaults(func="demo:run")
    return parser


def _command(args):
    """The function of the chosen subcommand, imported only now.

    The parser names each command as ``"module:function"`` under
    :mod:`nova_slices.cmd`, so that ``--help``, ``topology`` or ``fit``
    do not pay for importing what ``demo``, ``spawn`` or ``sync`` need
    (Placement, keystoneauth, libvirt, templates).
    """
    module, _, name = args.func.partition(":")
    return getattr(importlib.import_module(f"nova_slices.cmd.{module}"), name)


def _own_file_error(exc, conf):
    """An OSError on a file under ``state_path`` (state, locks) as an
    error naming the path; None for any other file (a bug of ours)."""
    if conf is None or not conf.state_path:
        return None
    state = os.path.realpath(conf.state_path)
    for name in (exc.filename, exc.filename2):
        if not isinstance(name, str):
            continue
        path = os.path.realpath(name)
        if os.path.commonpath([state, path]) != state:
            continue
        err = ConfigError(
            f"[DEFAULT] state_path {conf.state_path}: cannot use {name}: "
            f"{exc.strerror or exc}; nova-slices keeps its own files there "
            "(locks, persisted domains, the embedded Placement's database), "
            "so it must be a directory it may write",
            code="config.state-path-unusable",
            key="[DEFAULT] state_path",
            value=name,
        )
        # a full or failing disk is not bad input: try again later
        if exc.errno in (errno.ENOSPC, errno.EDQUOT, errno.EIO):
            err.with_status(1)
        return err
    return None


def main(argv=None):
    parser = build_parser()
    argv = sys.argv[1:] if argv is None else list(argv)
    args = parser.parse_args(argv)
    fmt = getattr(args, "format", "text")
    conf = None
    try:
        _check_arguments(args, argv)
        _pairs_to_dicts(args)
        overrides = {}
        if args.state_path:
            overrides[(None, "state_path")] = args.state_path
        if args.debug:
            overrides[(None, "debug")] = True
        func = _command(args)
        from nova_slices.cmd import logsetup
        from nova_slices.cmd.runtime import Runtime, load_conf

        conf = load_conf(args.config_file, args.config_dir, overrides)
        logsetup.setup(conf, conf.debug)
        with Runtime(conf) as runtime:
            return func(args, runtime)
    except NovaSlicesError as exc:
        emit_errors([exc], fmt)
        return exc.exit_status
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # the reader went away (``| head``): stop quietly, like coreutils
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except Exception as exc:  # a bug of ours: say so, without a traceback
        logging.getLogger(__name__).debug("internal error", exc_info=True)
        own = _own_file_error(exc, conf) if isinstance(exc, OSError) else None
        if own is not None:
            emit_errors([own], fmt)
            return own.exit_status
        sys.stderr.write(
            f"error [internal]: {type(exc).__name__}: {exc}. This is a bug "
            "in nova-slices; run with --debug for the traceback and report "
            "it.\n"
        )
        return 1


if __name__ == "__main__":
    sys.exit(main())
