"""Page size and locked memory, with Nova's flavor-versus-image rules.

An image may choose a page size only when the flavor allows a choice
(``large`` or ``any``); a flavor that names a size or ``small`` decides.
Locked memory needs a page size (Nova: LockMemoryForbidden), and flavor
and image must not disagree about it.
"""

import re

from nova_slices.request.model import ANY, LARGE, SMALL
from nova_slices.request.specs import as_bool, fail


def _page_size(key, value):
    text = str(value)
    if text in (SMALL, LARGE, ANY):
        return text
    if re.fullmatch(r"[0-9]+", text) and int(text) > 0:
        return int(text)
    from oslo_utils import strutils  # slow import: only here

    try:
        size = strutils.string_to_bytes(text, return_int=True) // 1024
    except ValueError:
        size = 0
    if size <= 0:
        raise fail(
            "page-size-invalid",
            key,
            value,
            "must be small, large, any, a size in KiB (2048) or a "
            "size with a unit (2MB, 1GB)",
        )
    return size


def page_size(specs):
    flavor, image = specs.get("mem_page_size")
    if not flavor:
        if image:
            raise fail(
                "image-page-size-forbidden",
                "hw_mem_page_size",
                image,
                "an image may choose a page size only when the flavor sets "
                "hw:mem_page_size=large or any",
            )
        return None
    size = _page_size("hw:mem_page_size", flavor)
    if not image:
        return size
    if size in (ANY, LARGE):
        return _page_size("hw_mem_page_size", image)
    raise fail(
        "image-page-size-forbidden",
        "hw_mem_page_size",
        image,
        f"the flavor sets hw:mem_page_size={flavor}; an image may choose "
        "only when the flavor says large or any",
    )


def locked_memory(specs, pagesize):
    flavor, image = specs.get("locked_memory")
    if flavor is not None:
        flavor = as_bool("hw:locked_memory", flavor, "locked-memory-invalid")
    if image is not None:
        image = as_bool("hw_locked_memory", image, "locked-memory-invalid")
    if flavor is not None and image is not None and flavor != image:
        raise fail(
            "locked-memory-conflict",
            "hw_locked_memory",
            image,
            f"the flavor sets hw:locked_memory={flavor}; flavor and image "
            "must agree",
        )
    locked = flavor if flavor is not None else image
    if locked and pagesize is None:
        key = (
            "hw:locked_memory" if flavor is not None else ("hw_locked_memory")
        )
        raw = specs.flavor.get(key, specs.image.get(key))
        raise fail(
            "locked-memory-needs-page-size",
            key,
            raw,
            "locking guest memory needs hw:mem_page_size (any size)",
        )
    return locked
