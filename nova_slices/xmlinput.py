"""XML from outside the process: host files, libvirt, rendered templates.

One parser configuration for all of it, so no reader forgets an option:
entities are never expanded (an external entity would pull a local file
into a domain; an internal one multiplies a small file into gigabytes),
nothing is fetched from the network, no DTD is loaded, and lxml's
``huge_tree`` stays off so libxml2 keeps its own limits on nesting depth
and text-node size.  The size is checked before parsing, and a document
with a DOCTYPE is refused outright: libvirt never writes one, and what a
DOCTYPE can declare (entities, defaults) is exactly what must not get in.

Errors are :class:`UnsafeXml`; each caller turns them into its own
:class:`~nova_slices.errors.NovaSlicesError` with its own code and names
the file or option the document came from.
"""

from lxml import etree

#: why a document was refused (the last part of each caller's code)
TOO_LARGE = "too-large"
MALFORMED = "malformed"
DOCTYPE = "doctype"


class UnsafeXml(ValueError):
    def __init__(self, message, reason, lineno=None):
        super().__init__(message)
        self.reason = reason
        self.lineno = lineno


def parser():
    """A new parser (lxml parsers are not thread-safe to share)."""
    return etree.XMLParser(
        resolve_entities=False,
        no_network=True,
        load_dtd=False,
        dtd_validation=False,
        huge_tree=False,
    )


def parse(data, max_bytes):
    """The root element of ``data`` (text or bytes) of at most
    ``max_bytes`` bytes; :class:`UnsafeXml` otherwise."""
    if isinstance(data, str):
        data = data.encode("utf-8")
    if len(data) > max_bytes:
        raise UnsafeXml(
            f"is larger than the limit of {max_bytes} bytes",
            TOO_LARGE,
        )
    try:
        root = etree.fromstring(data, parser())
    except etree.XMLSyntaxError as exc:
        raise UnsafeXml(
            f"is not well-formed XML: {exc.msg} (line {exc.lineno})",
            MALFORMED,
            exc.lineno,
        ) from None
    if root.getroottree().docinfo.doctype:
        raise UnsafeXml(
            "has a DOCTYPE declaration; DOCTYPEs and entities are refused "
            "(libvirt never writes them)",
            DOCTYPE,
        )
    return root


def read_bounded(path, max_bytes):
    """At most ``max_bytes + 1`` bytes of ``path``: enough for
    :func:`parse` to refuse an oversized file without reading all of it
    (``/dev/zero`` never ends)."""
    with open(path, "rb") as f:
        return f.read(max_bytes + 1)
