"""Hostile slice templates: refused with a code, naming the file and
what it did, within a bounded time.

One row per refusal: a function that writes the template (and whatever
it links to) into a private directory and returns its path and the words
the message must hold, and the code.  Every row checks the code, that
``key`` is ``template_file``, that the message names the template file,
and the time taken: before the sandbox was bounded, ``{{ 'x' * 10**9 }}``
hung the render.
"""

import os
import time

import pytest

from nova_slices.errors import TemplateError
from nova_slices.virt import sandbox
from nova_slices.virt.templates import (
    MAX_TEMPLATE_BYTES,
    check_slice_template,
    render_slice_template,
)
from tests.fixtures.scheduling import EXCLUSIVE
from tests.unit.test_templates import TEMPLATES, make_context

# wall-clock bounds: see tests/fixtures/scheduling.py
pytestmark = EXCLUSIVE

#: seconds a refusal may take: the render deadline, plus slack for a
#: loaded machine
BOUND = sandbox.MAX_RENDER_SECONDS + 5
NS = "http://openstack.org/xmlns/nova-slices/1.0"


@pytest.fixture
def tdir(tmp_path):
    d = tmp_path / "templates"
    d.mkdir()
    (d / "_base.xml.j2").write_text((TEMPLATES / "_base.xml.j2").read_text())
    return d


def body(text, words):
    """A row whose template is ``<domain>TEXT</domain>``."""

    def make(d):
        p = d / "slice.xml.j2"
        p.write_text(f"<domain>{text}</domain>\n")
        return p, words

    return make


BIG = "{% set a = 'x' * 200000 %}"


def _include_link(target, words):
    def make(d):
        os.symlink(target, d / "part.inc")
        p = d / "slice.xml.j2"
        p.write_text("<domain>{% include 'part.inc' %}</domain>\n")
        return p, words

    return make


def _template_link(d):
    os.symlink("/etc/passwd", d / "slice.xml.j2")
    return d / "slice.xml.j2", ("'/etc/passwd'", "outside")


def _extends_link(d):
    outside = d.parent / "outside.xml.j2"
    outside.write_text("<domain>{% block b %}{% endblock %}</domain>\n")
    os.symlink(outside, d / "base.xml.j2")
    p = d / "slice.xml.j2"
    p.write_text('{% extends "base.xml.j2" %}\n')
    return p, (str(outside), "outside")


def _fifo(d):
    os.mkfifo(d / "part.inc")
    p = d / "slice.xml.j2"
    p.write_text("<domain>{% include 'part.inc' %}</domain>\n")
    return p, ("'part.inc'",)


def _huge_include(d):
    (d / "part.inc").write_text("x" * (MAX_TEMPLATE_BYTES + 1))
    p = d / "slice.xml.j2"
    p.write_text("<domain>{% include 'part.inc' %}</domain>\n")
    return p, (f"larger than {MAX_TEMPLATE_BYTES} bytes", "part.inc")


def _doctype(d):
    p = d / "slice.xml.j2"
    p.write_text(
        "<!DOCTYPE domain [<!ENTITY x SYSTEM 'file:///etc/passwd'>]>"
        "<domain><description>&x;</description></domain>\n"
    )
    return p, ("DOCTYPE",)


def _forged_in_base(d):
    (d / "_base.xml.j2").write_text(
        f"<domain xmlns:s='{NS}'><metadata><s:instance>"
        "<s:instance_uuid>{{ instance.uuid }}</s:instance_uuid>"
        "</s:instance></metadata></domain>\n"
    )
    p = d / "slice.xml.j2"
    p.write_text('{% extends "_base.xml.j2" %}\n')
    return p, ("<s:instance>", NS)


ROWS = [
    (
        "multiply-string",
        body("{{ 'x' * 10**9 }}", ("'*'", "1000000000", "'x' * 10**9")),
        "template.too-large",
    ),
    (
        "multiply-list",
        body("{{ ([1] * 10**8)|length }}", ("'*'", "[1] * 10**8")),
        "template.too-large",
    ),
    (
        "power",
        body("{{ 7 ** 999999 }}", ("'**'", "4096 bits")),
        "template.too-large",
    ),
    (
        "squaring",
        body(
            "{% set a = 2 ** 3000 %}{% set a = a * a %}{{ a }}",
            ("'*'", "6002-bit"),
        ),
        "template.too-large",
    ),
    (
        "percent-width",
        body("{{ '%999999999s' % 'x' }}", ("'%'", "999999999")),
        "template.too-large",
    ),
    (
        "format-filter",
        body("{{ '%*d'|format(999999999, 1) }}", ("format",)),
        "template.too-large",
    ),
    (
        "str-format-nested-width",
        body("{{ '{:>{w}}'.format('x', w=10**9) }}", ("str.format()",)),
        "template.too-large",
    ),
    (
        "center-filter",
        body("{{ 'x'|center(999999999) }}", ("center", "999999999")),
        "template.too-large",
    ),
    (
        "ljust-method",
        body("{{ 'x'.ljust(999999999) }}", ("str.ljust()",)),
        "template.too-large",
    ),
    (
        "replace-method",
        body(BIG + "{{ a.replace('x', a) }}", ("str.replace()",)),
        "template.too-large",
    ),
    (
        "join-filter",
        body(BIG + "{{ a|join(a) }}", ("join",)),
        "template.too-large",
    ),
    (
        "indent-filter",
        body("{{ ('x\n' * 100000)|indent(1000) }}", ("indent",)),
        "template.too-large",
    ),
    (
        "batch-fill",
        body("{{ [1]|batch(10**9, 'x')|list }}", ("batch/slice",)),
        "template.too-large",
    ),
    (
        "tojson-indent",
        body("{{ [1]|tojson(indent=10**9) }}", ("tojson",)),
        "template.too-large",
    ),
    (
        "concat-doubling",
        body(BIG + "{% set a = a ~ a %}{% set a = a ~ a %}{{ a }}", ("'~'",)),
        "template.too-large",
    ),
    (
        "nested-list-printed",
        body(
            "{% set a = [1, 2, 3, 4] %}"
            + "{% set a = [a, a] %}" * 60
            + "{{ a }}",
            ("an expression",),
        ),
        "template.too-large",
    ),
    (
        "output-too-long",
        body(
            "{% for i in range(100000) %}{{ 'xxxxxxxx' }}{% endfor %}",
            ("longer than 262144 characters",),
        ),
        "template.too-large",
    ),
    (
        "loops-printing-nothing",
        body(
            "{% for i in range(100000) %}{% for j in range(100000) %}"
            "{% endfor %}{% endfor %}",
            ("more than 5 s", "range(100000)"),
        ),
        "template.timeout",
    ),
    (
        "lipsum-removed",
        body("{{ lipsum(100000) }}", ("'lipsum' is undefined",)),
        "template.undefined",
    ),
    (
        "recursive-macro",
        body("{% macro m() %}{{ m() }}{% endmacro %}{{ m() }}", ("recurses",)),
        "template.render",
    ),
    (
        "include-symlink-out",
        _include_link("/etc/passwd", ("'/etc/passwd'", "'part.inc'")),
        "template.outside-directory",
    ),
    (
        "include-dev-zero",
        _include_link("/dev/zero", ("'/dev/zero'",)),
        "template.outside-directory",
    ),
    ("template-symlink-out", _template_link, "template.outside-directory"),
    ("extends-symlink-out", _extends_link, "template.outside-directory"),
    ("include-fifo", _fifo, "template.missing"),
    ("include-too-large", _huge_include, "template.too-large"),
    ("doctype-external-entity", _doctype, "template.doctype"),
    (
        "entity-without-doctype",
        body("<description>&x;</description>", ("Entity 'x' not defined",)),
        "template.invalid-xml",
    ),
    (
        "forged-metadata",
        body(
            f"<metadata><s:instance xmlns:s='{NS}'/></metadata>",
            ("<s:instance>", NS, "driver's to write"),
        ),
        "template.reserved-metadata",
    ),
    ("forged-metadata-in-base", _forged_in_base, "template.reserved-metadata"),
]


@pytest.mark.parametrize(
    "make, code", [r[1:] for r in ROWS], ids=[r[0] for r in ROWS]
)
def test_hostile_template(tdir, make, code):
    path, words = make(tdir)
    start = time.monotonic()
    with pytest.raises(TemplateError) as info:
        render_slice_template(str(path), make_context())
    elapsed = time.monotonic() - start
    err = info.value
    assert err.code == code, err.message
    assert err.key == "template_file"
    assert str(path) in err.message
    for word in words:
        assert word in err.message
    assert elapsed < BOUND, f"took {elapsed:.1f} s"


def test_startup_check_refuses_a_template_linking_out(tdir):
    path, _ = _template_link(tdir)
    with pytest.raises(TemplateError) as info:
        check_slice_template(str(path))
    assert info.value.code == "template.outside-directory"


def test_links_inside_the_directory_are_fine(tdir):
    (tdir / "real.xml.j2").write_text("<domain>{{ instance.name }}</domain>")
    os.symlink("real.xml.j2", tdir / "slice.xml.j2")
    text = render_slice_template(str(tdir / "slice.xml.j2"), make_context())
    assert "instance-00000001" in text


def test_ordinary_template_work_still_renders(tdir):
    p = tdir / "ok.xml.j2"
    p.write_text(
        "<domain><name>{{ instance.name }}</name>"
        "<memory>{{ '%d'|format(flavor.memory_mb * 1024) }}</memory>"
        "<description>{{ 'a:b'.split(':')|join('-') }} {{ 'ab' * 3 }} "
        "{{ '{:>4}'.format(7) }} {{ '%04x' % 255 }} {{ 2 ** 40 }}"
        "</description></domain>"
    )
    text = render_slice_template(str(p), make_context())
    assert "<memory>100663296</memory>" in text
    assert "a-b ababab    7 00ff 1099511627776" in text
