"""CPU and NUMA-node set strings as libvirt and Nova write them.

``0-3,^2,8-11``: ranges, single ids, exclusions, whitespace around items.

Every id is checked against a bound *before* any range is expanded, and
overlapping ranges are merged first, so parsing costs at most the size of
the bound whatever the text says: ``0-99999999999`` is refused at once
instead of building a set of 10^11 ids.  Callers that know the host pass
its highest CPU (or cell) id; everyone else gets :data:`MAX_CPU_ID`.
"""

#: the largest CPU id accepted anywhere: Linux builds with NR_CPUS up to
#: 8192 (x86 MAXSMP), so 65535 leaves room and still bounds every set
MAX_CPU_ID = 65535


class CpusetTooLarge(ValueError):
    """A set naming an id above its bound, or more ids than allowed.

    A ValueError, so callers that only ask "is this a valid set" keep
    working; callers that can say more (the host's CPUs) catch it.
    """

    def __init__(self, message, item, limit):
        super().__init__(message)
        #: the offending item as written (``0-99999999999``)
        self.item = item
        #: the bound it broke
        self.limit = limit


def parse_cpuset(text, max_id=MAX_CPU_ID, max_size=None):
    """Return the set of ids in ``text``; ValueError names the bad part.

    ``max_id``: the highest id allowed; ``max_size``: the most ids the
    result may hold (both checked before expanding, as
    :class:`CpusetTooLarge`).
    """
    if text is None or not text.strip():
        raise ValueError("empty CPU set")
    include, exclude = [], []
    for raw in text.split(","):
        item = raw.strip()
        target = include
        if item.startswith("^"):
            target, item = exclude, item[1:].strip()
        if "-" in item:
            lo_text, _, hi_text = item.partition("-")
            lo, hi = _id(lo_text, raw, max_id), _id(hi_text, raw, max_id)
            if lo > hi:
                raise ValueError(f"range {_shown(raw)} runs backwards")
        else:
            lo = hi = _id(item, raw, max_id)
        target.append((lo, hi))
    include = _merge(include)
    if max_size is not None:
        size = sum(hi - lo + 1 for lo, hi in include)
        if size > max_size:
            raise CpusetTooLarge(
                f"{_shown(text)} names {size} ids, more than the "
                f"{max_size} allowed",
                text.strip(),
                max_size,
            )
    result = set()
    for lo, hi in include:
        result.update(range(lo, hi + 1))
    for lo, hi in _merge(exclude):
        result.difference_update(range(lo, hi + 1))
    if not result:
        raise ValueError(f"CPU set {_shown(text)} is empty after exclusions")
    return result


def _merge(ranges):
    """Sorted, non-overlapping ``(lo, hi)`` ranges covering ``ranges``,
    so that ``0-65535`` written a thousand times expands once."""
    merged = []
    for lo, hi in sorted(ranges):
        if merged and lo <= merged[-1][1] + 1:
            merged[-1] = (merged[-1][0], max(merged[-1][1], hi))
        else:
            merged.append((lo, hi))
    return merged


def _id(text, raw, max_id):
    text = text.strip()
    # isdigit() accepts other scripts' digits and superscripts ('²'),
    # which int() then refuses or reads differently: ASCII only
    if not (text.isascii() and text.isdigit()):
        raise ValueError(
            f"{_shown(raw)} is not a CPU id or range (e.g. 0-3,^2,8)"
        )
    # compared as text first: int() of a 100,000-digit id is slow too
    digits = text.lstrip("0") or "0"
    if len(digits) > len(str(max_id)) or int(digits) > max_id:
        raise CpusetTooLarge(
            f"{_shown(raw)} names id {_shown(digits, quote=False)}, above "
            f"the highest allowed id {max_id}",
            raw.strip(),
            max_id,
        )
    return int(digits)


def _shown(text, quote=True, width=40):
    """``text`` cut short for a message: a hostile value may be huge."""
    text = text.strip()
    if len(text) > width:
        text = text[:width] + "..."
    return repr(text) if quote else text


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
