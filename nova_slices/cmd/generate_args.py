"""The ``generate-slices`` flags, apart from the command.

Kept out of :mod:`nova_slices.cmd.generate` so that building the CLI's
parser does not import the generator and the configuration it carries
over (every other command's start-up would pay for them).
"""


def add_parser(sub, add_format):
    p = sub.add_parser(
        "generate-slices",
        help="write slices for this host from its hardware: "
        "DIR/nova-slices.conf and DIR/templates/ (one slice per GPU, per "
        "NUMA cell and socket with several GPUs, one for the whole host)",
    )
    p.add_argument(
        "--output-dir",
        required=True,
        metavar="DIR",
        help="an empty or new directory",
    )
    p.add_argument(
        "--gpu",
        action="append",
        default=[],
        metavar="VENDOR:PRODUCT|ADDRESS",
        help="a device to use as a GPU (repeatable); taken even from "
        "[devices] mdev configuration",
    )
    p.add_argument(
        "--gpu-class",
        action="append",
        default=[],
        metavar="HEX",
        help="PCI class code prefix of GPUs (repeatable; default 0x03, "
        "display controllers, unless --gpu is given)",
    )
    p.add_argument(
        "--reserved-cores",
        metavar="N",
        help="whole cores kept for the host at the start of every NUMA "
        "cell (default: one per GPU, the first of each GPU's share, and "
        "one in a cell without GPUs)",
    )
    p.add_argument(
        "--reserved-cpus",
        metavar="CPUSET",
        help="the CPUs kept for the host, whole cores (e.g. 0,8,64,72)",
    )
    p.add_argument(
        "--reserved-memory-mb",
        metavar="MB",
        help="memory kept out of slices in every NUMA cell, from the "
        "chosen page size's pool (default: 4096 with base pages, 0 with "
        "hugepages)",
    )
    p.add_argument(
        "--page-size",
        metavar="SIZE",
        help="pages backing slice memory: 4K, 2M, 1G... (default: the "
        "largest size every GPU cell has pages of)",
    )
    add_format(p)
    p.set_defaults(func="generate:run")
