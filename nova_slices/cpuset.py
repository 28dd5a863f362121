"""CPU and NUMA-node set strings as libvirt and Nova write them.

``0-3,^2,8-11``: ranges, single ids, exclusions, whitespace around items.
"""


def parse_cpuset(text):
    """Return the set of ids in ``text``; ValueError names the bad part."""
    if text is None or not text.strip():
        raise ValueError("empty CPU set")
    include, exclude = set(), set()
    for raw in text.split(","):
        item = raw.strip()
        target = include
        if item.startswith("^"):
            target, item = exclude, item[1:].strip()
        if "-" in item:
            lo_text, _, hi_text = item.partition("-")
            lo, hi = _id(lo_text, raw), _id(hi_text, raw)
            if lo > hi:
                raise ValueError(f"range {raw.strip()!r} runs backwards")
            target.update(range(lo, hi + 1))
        else:
            target.add(_id(item, raw))
    result = include - exclude
    if not result:
        raise ValueError(f"CPU set {text!r} is empty after exclusions")
    return result


def _id(text, raw):
    text = text.strip()
    if not text.isdigit():
        raise ValueError(
            f"{raw.strip()!r} is not a CPU id or range (e.g. 0-3,^2,8)"
        )
    return int(text)


def format_cpuset(ids):
    """Shortest range form: {0,1,2,5} -> '0-2,5'."""
    ids = sorted(set(ids))
    parts, i = [], 0
    while i < len(ids):
        j = i
        while j + 1 < len(ids) and ids[j + 1] == ids[j] + 1:
            j += 1
        parts.append(str(ids[i]) if i == j else f"{ids[i]}-{ids[j]}")
        i = j + 1
    return ",".join(parts)
