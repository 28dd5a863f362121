"""Render an operator's jinja2 slice template into libvirt domain XML.

Slice templates are operator-written files (``[libvirt] slice_spec``
``template_file``), so rendering treats them as untrusted code running on
a compute host and the render context as untrusted data:

* ``ImmutableSandboxedEnvironment``: a template cannot reach Python
  internals or mutate the context it is given.
* XML autoescaping is on, so an instance name such as
  ``x</name><devices><hostdev ...`` comes out as text, never as markup.
* ``StrictUndefined``: a misspelt variable is an error, not an empty
  attribute that libvirt would silently accept or misread.
* Every failure becomes a :class:`~nova_slices.errors.TemplateError` with
  a stable code that names the file, the line where known, and the
  offending value; no jinja2 or lxml traceback escapes.

* Renders are bounded in size and time (:mod:`nova_slices.virt.sandbox`):
  ``{{ 'x' * 10**9 }}`` is refused, not computed.
* The loader is rooted at the template's own directory so that
  ``{% extends "_base.xml.j2" %}`` finds the shared body beside it, and
  it stays there: a template or include whose real path (symlinks
  resolved) leaves the directory is refused before it is opened, so a
  link to a system file cannot pull it into a domain.  Files over
  :data:`MAX_TEMPLATE_BYTES` are refused unread.
* The rendered text is parsed with the project's one safe parser: no
  entities, and a DOCTYPE is refused.  It may not contain our own
  ``<metadata>`` record (:mod:`nova_slices.virt.metadata`): that is the
  driver's to write, and a template that forges it is refused.

One environment is kept per directory; jinja2 caches compiled templates in
it and recompiles a file when its mtime changes.

Render context (every key is required by the shipped templates; pass
empty lists/dicts rather than leaving keys out)::

    instance    {"uuid": str, "name": str}
    flavor      {"name": str, "vcpus": int, "memory_mb": int,
                 "extra_specs": {str: str}}
    disk_path   str, path of the root disk image (qcow2)
    interfaces  [{"type": "network" | "bridge",
                  "source": str,          # network name or bridge name
                  "mac_address": str,     # "52:54:00:.."
                  "model": str}]          # optional, default "virtio"
    metadata    {str: str}, the instance's user metadata
    slice       {"name": str, "resource_class": str}
    devices     {"pci": [{"address": "0000:3b:00.2"}, ...],
                 "mdev": [{"uuid": str}, ...]}
                each pci item becomes a managed PCI <hostdev> (e.g. an
                SR-IOV VF), each mdev item an mdev <hostdev>
    host        {"hostname": str}

The templates must not emit ``<metadata>``: the driver adds its own.
"""

import contextlib
import os
import stat
import threading

import jinja2
import jinja2.loaders
import jinja2.nodes

from nova_slices import xmlinput
from nova_slices.errors import TemplateError
from nova_slices.virt import metadata
from nova_slices.virt.sandbox import (
    MAX_RENDERED_CHARS,
    BoundedSandbox,
    RenderLimit,
    render_bounded,
)

#: a template file (or include) larger than this is refused unread
MAX_TEMPLATE_BYTES = 1024 * 1024

_ENVIRONMENTS = {}
_ENV_LOCK = threading.Lock()


class _Outside(Exception):
    """A template whose real path leaves the template directory."""

    def __init__(self, name, real):
        super().__init__(name)
        self.name = name
        self.real = real


def _inside(root, name):
    """The real path of template ``name`` under ``root``, which must stay
    under ``root`` (``_Outside`` otherwise); checked before opening, so a
    link to a FIFO or /dev/zero cannot block or flood the read."""
    real = os.path.realpath(
        os.path.join(root, *jinja2.loaders.split_template_path(name))
    )
    if os.path.commonpath([root, real]) != root:
        raise _Outside(name, real)
    return real


class _ContainedLoader(jinja2.BaseLoader):
    """FileSystemLoader's lookup, confined to one real directory."""

    def __init__(self, root):
        self.root = root

    def get_source(self, environment, template):
        real = _inside(self.root, template)
        try:
            st = os.stat(real)
        except FileNotFoundError:
            raise jinja2.TemplateNotFound(template) from None
        if not stat.S_ISREG(st.st_mode):
            raise jinja2.TemplateNotFound(template)
        with open(real, "rb") as f:
            data = f.read(MAX_TEMPLATE_BYTES + 1)
        if len(data) > MAX_TEMPLATE_BYTES:
            raise RenderLimit(
                f"{real!r} is larger than {MAX_TEMPLATE_BYTES} bytes"
            )
        mtime = st.st_mtime

        def uptodate():
            try:
                return os.path.getmtime(real) == mtime
            except OSError:
                return False

        return data.decode("utf-8"), real, uptodate


def _environment(directory):
    """Return the cached sandboxed environment for one template directory
    (its real path)."""
    with _ENV_LOCK:
        env = _ENVIRONMENTS.get(directory)
        if env is None:
            env = BoundedSandbox(
                loader=_ContainedLoader(directory),
                undefined=jinja2.StrictUndefined,
                autoescape=jinja2.select_autoescape(
                    enabled_extensions=("xml", "j2", "xml.j2"),
                    default_for_string=True,
                    default=True,
                ),
                trim_blocks=True,
                lstrip_blocks=True,
                keep_trailing_newline=True,
                auto_reload=True,
            )
            _ENVIRONMENTS[directory] = env
        return env


def _split(path):
    """(real directory, file name) of a template path given as is: the
    directory's symlinks are resolved, the file's are checked against it."""
    directory, name = os.path.split(os.path.abspath(path))
    root = os.path.realpath(directory)
    try:
        _inside(root, name)
    except _Outside as exc:
        raise _outside_error(path, exc) from None
    return root, name


def _outside_error(path, exc):
    return TemplateError(
        f"slice template {path!r}: {exc.name!r} resolves to {exc.real!r}, "
        "outside the template directory; templates and what they extend "
        "or include must be files inside it (no symlinks leading out)",
        code="template.outside-directory",
        key="template_file",
        value=exc.real,
    )


def _check_readable(path):
    """Fail early with missing/unreadable, which jinja2 would conflate."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise TemplateError(
            f"slice template {path!r} does not exist; template_file must name "
            f"an existing jinja2 file such as templates/slice_1_1.xml.j2",
            code="template.missing",
            key="template_file",
            value=path,
        ) from None
    except OSError as exc:
        raise TemplateError(
            f"slice template {path!r} cannot be read: {exc.strerror}; it must "
            f"be a readable regular file",
            code="template.unreadable",
            key="template_file",
            value=path,
        ) from None
    if not stat.S_ISREG(st.st_mode):
        raise TemplateError(
            f"slice template {path!r} is not a regular file; template_file "
            f"must name a readable jinja2 file, not a directory or device",
            code="template.unreadable",
            key="template_file",
            value=path,
        )
    try:
        with open(path, "rb"):
            pass
    except OSError as exc:
        raise TemplateError(
            f"slice template {path!r} cannot be read: {exc.strerror}; it must "
            f"be readable by the nova-compute user",
            code="template.unreadable",
            key="template_file",
            value=path,
        ) from None


def _location(exc, directory):
    """Return ' (FILE line N: SOURCE)' for the innermost template frame.

    jinja2 rewrites tracebacks so template frames carry the template's file
    name and line; the innermost one inside our directory is the culprit.
    jinja2's own message only says e.g. "'dict object' has no attribute
    'uuid'", so the source line is what tells the operator which variable.
    """
    found = None
    tb = exc.__traceback__
    while tb is not None:
        filename = tb.tb_frame.f_code.co_filename
        if filename.startswith(directory + os.sep):
            found = (filename, tb.tb_lineno)
        tb = tb.tb_next
    if found is None:
        return ""
    filename, lineno = found
    try:
        with open(filename, encoding="utf-8") as f:
            source = f.read().splitlines()[lineno - 1].strip()
    except (OSError, UnicodeDecodeError, IndexError):
        return f" ({filename} line {lineno})"
    return f" ({filename} line {lineno}: {source[:160]})"


def _check_xml(path, text):
    """Reject rendered text that is not well-formed XML, declares a
    DOCTYPE, or carries our own metadata record."""
    try:
        # the render is bounded in characters; UTF-8 takes up to 4 bytes
        root = xmlinput.parse(text, 4 * MAX_RENDERED_CHARS)
    except xmlinput.UnsafeXml as exc:
        if exc.reason == xmlinput.DOCTYPE:
            raise TemplateError(
                f"slice template {path!r} rendered a document that {exc}; "
                "write the <domain> element alone",
                code="template.doctype",
                key="template_file",
                value=path,
            ) from None
        raise TemplateError(
            f"slice template {path!r} rendered text that {exc}; the "
            "template must produce one libvirt <domain> document",
            code="template.invalid-xml",
            key="template_file",
            value=exc.lineno,
        ) from None
    forged = next(root.iter(f"{{{metadata.NS}}}*"), None)
    if forged is not None:
        raise TemplateError(
            f"slice template {path!r} writes <{forged.prefix or ''}"
            f"{':' if forged.prefix else ''}{_local_name(forged)}> in "
            f"nova-slices' own namespace {metadata.NS} (rendered line "
            f"{forged.sourceline}); that record is the driver's to write: "
            "remove it from the template",
            code="template.reserved-metadata",
            key="template_file",
            value=metadata.NS,
        )


def _local_name(element):
    """An element's tag without its ``{namespace}``."""
    return element.tag.rpartition("}")[2]


@contextlib.contextmanager
def _template_errors(path, directory, context_keys=()):
    """Turn jinja2 and I/O failures into TemplateError with a stable code."""
    try:
        yield
    except TemplateError:
        raise
    except _Outside as exc:
        raise _outside_error(path, exc) from None
    except RenderLimit as exc:
        raise TemplateError(
            f"slice template {path!r} stopped: {exc}"
            f"{_location(exc, directory)}; a domain template renders a few "
            "KiB in milliseconds",
            code=exc.code,
            key="template_file",
            value=path,
        ) from None
    except RecursionError:
        raise TemplateError(
            f"slice template {path!r} recurses without end (extends, "
            "include, macros or loop(...) calling themselves)",
            code="template.render",
            key="template_file",
            value=path,
        ) from None
    except jinja2.TemplateSyntaxError as exc:
        where = exc.filename or path
        raise TemplateError(
            f"slice template syntax error in {where!r} line {exc.lineno}: "
            f"{exc.message}; fix the jinja2 markup there",
            code="template.syntax",
            key="template_file",
            value=f"{where}:{exc.lineno}",
        ) from None
    except jinja2.TemplateNotFound as exc:
        raise TemplateError(
            f"slice template {path!r} refers to {exc.name!r}, which does not "
            f"exist in {directory!r}; extends/include/import must name a file "
            f"beside the template",
            code="template.missing",
            key="template_file",
            value=exc.name,
        ) from None
    except jinja2.UndefinedError as exc:
        raise TemplateError(
            f"slice template {path!r} uses a variable the render context "
            f"lacks: {exc.message}{_location(exc, directory)}; available keys "
            f"are {', '.join(sorted(context_keys))}",
            code="template.undefined",
            key="template_file",
            value=exc.message,
        ) from None
    except UnicodeDecodeError as exc:
        raise TemplateError(
            f"slice template {path!r} (or a file it includes) is not valid "
            f"UTF-8: {exc.reason} at byte {exc.start}; save it as UTF-8",
            code="template.unreadable",
            key="template_file",
            value=path,
        ) from None
    except OSError as exc:
        raise TemplateError(
            f"slice template {path!r} (or a file it includes) cannot be "
            f"read: {exc.strerror or exc}; it must be a readable regular file",
            code="template.unreadable",
            key="template_file",
            value=path,
        ) from None
    except Exception as exc:  # noqa: BLE001 - sandbox errors, filters, maths
        raise TemplateError(
            f"slice template {path!r} failed to render: "
            f"{type(exc).__name__}: {exc}{_location(exc, directory)}",
            code="template.render",
            key="template_file",
            value=str(exc),
        ) from None


def check_slice_template(path):
    """Load and compile a template (and what it extends) without rendering.

    Used at startup so a missing, unreadable or syntactically broken
    template is reported before the first guest needs it.
    """
    path = os.path.abspath(path)
    directory, name = _split(path)
    _check_readable(path)
    with _template_errors(path, directory):
        template = _environment(directory).get_template(name)
        # compile the parents too: ``extends`` resolves at render time
        env = template.environment
        for parent in env.parse(env.loader.get_source(env, name)[0]).find_all(
            jinja2.nodes.Extends
        ):
            if isinstance(parent.template, jinja2.nodes.Const):
                env.get_template(parent.template.value)


def render_slice_template(path, context):
    """Render the slice template at ``path`` with ``context``; return XML text.

    The result is well-formed XML but not yet checked against libvirt's
    schema or the host; see :mod:`nova_slices.virt.schema`.
    """
    path = os.path.abspath(path)
    directory, name = _split(path)
    _check_readable(path)
    env = _environment(directory)
    with _template_errors(path, directory, context):
        text = render_bounded(
            env.get_template(name), context, directory + os.sep
        )
    _check_xml(path, text)
    return text
