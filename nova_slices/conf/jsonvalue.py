"""JSON option values (``[pci] device_spec``/``alias``, slice specs).

``json.loads`` keeps the last of two equal keys and drops the other
without a word, so ``{"vendor_id": "10de", "vendor_id": "15b3"}`` would
quietly mean one of two devices.  These values refuse that instead.
"""

import json


def _pairs(items):
    out = {}
    for key, value in items:
        if key in out:
            raise ValueError(f"key {key!r} appears twice")
        out[key] = value
    return out


def loads(text):
    """``json.loads`` that refuses an object with a repeated key."""
    return json.loads(text, object_pairs_hook=_pairs)
