"""Extra spec validators for nova-api (``nova.api.extra_spec_validators``).

With this package installed, nova-api accepts the keys it adds:
``hw:numa_node.{num}`` (explicit host NUMA cell pinning of guest cell
``num``) and ``nova_slices:slice_class`` (the slice class a flavor asks
for).  Nova imports
this module through the entry point and calls :func:`register`; Nova is
imported only then.
"""

#: the keys this package adds, as (name, parameters, value) descriptions;
#: kept free of Nova types so they can be checked without Nova
VALIDATORS = (
    {
        "name": "hw:numa_node.{num}",
        "description": (
            "Pin guest NUMA cell ``{num}`` to a host NUMA cell. Guest cells "
            "are numbered from 0 (see ``hw:numa_nodes``); two guest cells "
            "may not name the same host cell. Whether the host has the "
            "cell is decided when the guest is placed. Only supported by "
            "hosts running nova-slices."
        ),
        "parameters": [
            {
                "name": "num",
                "pattern": r"\d+",
                "description": "The ID of the **guest** NUMA cell.",
            },
        ],
        "value": {
            "type": int,
            "description": "The ID of the **host** NUMA cell.",
            "min": 0,
        },
    },
    {
        "name": "nova_slices:slice_class",
        "description": (
            "The slice resource class this flavor asks for; the flavor "
            "must also carry the granular resource groups that "
            "``nova-slices flavor-specs`` prints for it."
        ),
        "parameters": [],
        "value": {
            "type": str,
            "description": "A custom resource class, CUSTOM_[A-Z0-9_]+.",
            "pattern": r"CUSTOM_[A-Z0-9_]+",
        },
    },
)


def register():
    """Return Nova ExtraSpecValidator objects for this package's keys."""
    from nova.api.validation.extra_specs import base

    return [base.ExtraSpecValidator(**dict(v)) for v in VALIDATORS]
