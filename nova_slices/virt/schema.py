"""Check XML against libvirt's own RelaxNG schemas before libvirt sees it.

Why here and not only in libvirt: without ``VIR_DOMAIN_DEFINE_VALIDATE``
libvirt's parser drops unknown elements and attributes (checked on 9.0: a
misspelt ``<numatun>`` defines fine and the memory binding is silently
gone).  Validating against the schema shipped
with libvirt (Debian package ``libvirt0``:
``/usr/share/libvirt/schemas/``) catches that at render time with the
schema's line-numbered errors, and the same check guards the host
capabilities files used with the test driver.

Schemas are parsed once per path (``domain.rng`` pulls in a dozen files;
~7 ms, paid once instead of on every spawn) and kept for the life of the
process.  lxml's RelaxNG validator keeps its error log on the instance, so
each validation holds a per-schema lock.
"""

import os
import threading

from lxml import etree

from nova_slices import xmlinput
from nova_slices.errors import HostError, TemplateError

SCHEMA_DIR = "/usr/share/libvirt/schemas"
DOMAIN_RNG = os.path.join(SCHEMA_DIR, "domain.rng")
CAPABILITY_RNG = os.path.join(SCHEMA_DIR, "capability.rng")

#: how many schema errors a message lists
MAX_ERRORS = 5
#: XML text larger than this is refused unparsed (see xmlinput)
MAX_DOCUMENT_BYTES = 64 * 1024 * 1024

_SCHEMAS = {}
_LOCK = threading.Lock()


def _schema(path, error_cls, code_prefix):
    """Return ``(RelaxNG, lock)`` for ``path``, parsing it on first use."""
    path = os.path.abspath(path)
    with _LOCK:
        cached = _SCHEMAS.get(path)
        if cached is not None:
            return cached
        try:
            rng = etree.RelaxNG(etree.parse(path))
        except OSError as exc:
            raise error_cls(
                f"libvirt schema {path!r} cannot be read ({exc}); install "
                f"libvirt's schemas (Debian: libvirt0) or pass schema_path",
                code=f"{code_prefix}.schema-unavailable",
                key="schema_path",
                value=path,
            ) from None
        except (etree.XMLSyntaxError, etree.RelaxNGParseError) as exc:
            raise error_cls(
                f"libvirt schema {path!r} is not a usable RelaxNG schema: "
                f"{exc}; point schema_path at libvirt's "
                f"{os.path.basename(path)}",
                code=f"{code_prefix}.schema-unavailable",
                key="schema_path",
                value=path,
            ) from None
        cached = (rng, threading.Lock())
        _SCHEMAS[path] = cached
        return cached


def _as_tree(xml, error_cls, code, what):
    """Accept XML text, bytes, an element or an element tree."""
    if isinstance(xml, etree._ElementTree):
        return xml
    if isinstance(xml, etree._Element):
        return etree.ElementTree(xml)
    try:
        return etree.ElementTree(xmlinput.parse(xml, MAX_DOCUMENT_BYTES))
    except xmlinput.UnsafeXml as exc:
        raise error_cls(
            f"{what} {exc}", code=code, key=what, value=exc.lineno
        ) from None
    except (TypeError, ValueError) as exc:
        raise error_cls(
            f"{what} must be XML text, bytes or an lxml element, not "
            f"{type(xml).__name__}: {exc}",
            code=code,
            key=what,
            value=type(xml).__name__,
        ) from None


def _validate(
    xml, schema_path, error_cls, code_prefix, code, syntax_code, what
):
    tree = _as_tree(xml, error_cls, syntax_code, what)
    rng, lock = _schema(schema_path, error_cls, code_prefix)
    with lock:
        if rng.validate(tree):
            return
        errors = list(rng.error_log)
    listed = [_describe(e) for e in errors[:MAX_ERRORS]]
    more = len(errors) - MAX_ERRORS
    shown = "; ".join(listed) + (f"; ... and {more} more" if more > 0 else "")
    raise error_cls(
        f"{what} does not validate against {schema_path}: {shown}",
        code=code,
        key=what,
        value=listed,
    )


def _describe(entry):
    """'line 12 at /domain/cputune: message' with whatever libxml2 knows."""
    where = []
    if entry.line:
        where.append(f"line {entry.line}")
    if getattr(entry, "path", None):
        where.append(f"at {entry.path}")
    prefix = " ".join(where) or "(no line)"
    return f"{prefix}: {entry.message}"


def validate_domain_xml(xml, schema_path=DOMAIN_RNG):
    """Raise ``TemplateError('template.invalid-domain')`` unless ``xml`` is a
    libvirt domain that validates against ``domain.rng``
    (``template.invalid-xml`` when it is not even well-formed)."""
    _validate(
        xml,
        schema_path,
        TemplateError,
        "template",
        "template.invalid-domain",
        "template.invalid-xml",
        "domain XML",
    )


def validate_capabilities_xml(xml, schema_path=CAPABILITY_RNG):
    """Raise ``HostError('host.invalid-capabilities')`` unless ``xml`` is a
    libvirt capabilities document that validates against ``capability.rng``."""
    _validate(
        xml,
        schema_path,
        HostError,
        "host",
        "host.invalid-capabilities",
        "host.invalid-capabilities",
        "capabilities XML",
    )
