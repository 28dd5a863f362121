"""A jinja2 sandbox whose renders are bounded in size and time.

jinja2's sandbox keeps a template away from Python internals but not from
the compute host's memory and CPU: ``{{ 'x' * 10**9 }}`` in a slice
template made ``validate`` and every spawn of that slice hang.  Slice
templates are operator-written files, so every render is bounded here:

* **values**: everything that can make a large value in one C-level step
  is checked *before* it runs, against :data:`MAX_RENDERED_CHARS`: the
  binary operators ``*``, ``**``, ``%`` and ``+`` (jinja2's
  ``intercepted_binops``), ``~`` (a code generator that checks the parts
  before joining), the ``str`` methods and filters that grow a string by
  an argument (``center``, ``ljust``, ``replace``, ``join``, ``format``,
  ``indent``, ``wordwrap``, ``batch``, ...), and every filter's input.
  A value is measured as what ``str()`` would make of it, counting a list
  that holds itself twice twice, so a structure that doubles with every
  ``{% set %}`` is caught before it is printed;
* **output**: the template is streamed and stopped once it has produced
  :data:`MAX_RENDERED_CHARS` characters (a domain is a few KiB);
* **time**: lines of template code check a deadline
  (:data:`MAX_RENDER_SECONDS`), so loops that print nothing (two nested
  ``range(100000)``) stop too.  The check is a trace function on the
  template's own frames only, installed for the render and removed after.

A limit raises :class:`RenderLimit`; :mod:`nova_slices.virt.templates`
turns it into a ``TemplateError`` naming the file and line.
"""

import functools
import math
import re
import string
import sys
import time

from jinja2 import compiler, sandbox
from jinja2.utils import Namespace

#: the most characters a render may produce, and the largest value it
#: may build; a shipped 8-GPU slice renders to about 6 KiB
MAX_RENDERED_CHARS = 256 * 1024
#: the largest integer a template may compute (``2 ** 4096``)
MAX_INT_BITS = 4096
#: wall-clock seconds one render may take; renders take milliseconds
MAX_RENDER_SECONDS = 5.0

_PERCENT_SPEC = re.compile(r"%(?:\([^)]*\))?[-#0 +]*(\*|\d*)(?:\.(\*|\d*))?")
_DIGITS = re.compile(r"\d+")


class RenderLimit(Exception):
    """A render went over a limit; ``code`` is the TemplateError code."""

    def __init__(self, message, code="template.too-large"):
        super().__init__(message)
        self.code = code


def measure(value, limit=MAX_RENDERED_CHARS):
    """About how many characters ``str(value)`` makes, counting only up
    to just past ``limit`` (so the cost is bounded too)."""
    total, stack = 0, [value]
    while stack and total <= limit:
        v = stack.pop()
        if isinstance(v, (str, bytes)):
            total += len(v)
        elif isinstance(v, (list, tuple, set, frozenset)):
            total += 2 + 2 * len(v)
            stack.extend(v)
        elif isinstance(v, dict):
            total += 2 + 4 * len(v)
            stack.extend(v.keys())
            stack.extend(v.values())
        elif isinstance(v, Namespace):
            # its repr shows everything it holds
            stack.append(object.__getattribute__(v, "_Namespace__attrs"))
        else:
            total += 24  # numbers (bounded by MAX_INT_BITS), None, ...
    return total


def _limit(what, size):
    if size > MAX_RENDERED_CHARS:
        raise RenderLimit(
            f"{what} would make about {size} characters, more than the "
            f"{MAX_RENDERED_CHARS} a render may produce"
        )


def _width(value):
    return len(value) if isinstance(value, str) else _int(value)


def _int(value):
    return value if isinstance(value, int) else 0


def _bits(what, bits):
    if bits > MAX_INT_BITS:
        raise RenderLimit(
            f"{what} would make a {bits}-bit integer, more than the "
            f"{MAX_INT_BITS} bits a template may compute"
        )


def _percent_widths(fmt, args):
    """Sum of the widths and precisions of a ``%`` format; ``*`` takes
    the largest integer argument (an upper bound)."""
    star = max(
        (_int(a) for a in (args if isinstance(args, tuple) else (args,))),
        default=0,
    )
    total = 0
    for width, precision in _PERCENT_SPEC.findall(fmt):
        for n in (width, precision):
            total += star if n == "*" else int(n or 0)
    return total


def _format_widths(fmt, args, kwargs):
    """Sum of the numbers in ``str.format`` specs; a nested field
    (``{:>{w}}``) takes the largest integer argument."""
    star = max(
        (_int(a) for a in (*args, *kwargs.values())),
        default=0,
    )
    total = 0
    for _, _, spec, _ in string.Formatter().parse(fmt):
        if spec:
            total += sum(int(n) for n in _DIGITS.findall(spec))
            total += star if "{" in spec else 0
    return total


def check_binop(op, left, right):
    """Refuse an operation whose result would be too large to build."""
    if op == "*":
        if isinstance(left, int) and isinstance(right, int):
            _bits("'*'", left.bit_length() + right.bit_length())
        elif isinstance(right, int):
            _limit("'*'", measure(left) * max(right, 0))
        elif isinstance(left, int):
            _limit("'*'", measure(right) * max(left, 0))
    elif op == "**":
        if (
            isinstance(left, int)
            and isinstance(right, int)
            and right > 1
            and abs(left) > 1
        ):
            _bits("'**'", math.ceil(math.log2(abs(left)) * right))
    elif op == "+":
        if not (isinstance(left, int) and isinstance(right, int)):
            _limit("'+'", measure(left) + measure(right))
    elif op == "%" and isinstance(left, str):
        _limit(
            "'%'",
            len(left) + measure(right) + _percent_widths(left, right),
        )


def _check_str_method(name, s, args, kwargs):
    """``str`` methods that grow a string by an argument."""
    if name in ("center", "ljust", "rjust", "zfill"):
        _limit(f"str.{name}()", max(len(s), _int(args[0] if args else 0)))
    elif name == "expandtabs":
        size = s.count("\t") * _int(args[0] if args else 8)
        _limit("str.expandtabs()", len(s) + size)
    elif name == "replace" and len(args) >= 2:
        old, new = args[0], args[1]
        if isinstance(old, str) and isinstance(new, str):
            _limit("str.replace()", len(s) + s.count(old) * len(new))
    elif name == "join" and args:
        items = args[0]
        count = len(items) if hasattr(items, "__len__") else 0
        _limit("str.join()", measure(items) + len(s) * count)
    elif name == "translate" and args and isinstance(args[0], dict):
        longest = max((measure(v) for v in args[0].values()), default=1)
        _limit("str.translate()", len(s) * max(longest, 1))


# -- filters ------------------------------------------------------------


def _check_center(value, width=80, *_, **__):
    _limit("center", max(measure(value), _int(width)))


def _check_indent(s, width=4, *_, **__):
    lines = str(s).count("\n") + 1 if isinstance(s, str) else 1
    _limit("indent", measure(s) + lines * _width(width))


def _check_join(value, d="", *_, **__):
    count = len(value) if hasattr(value, "__len__") else 0
    _limit("join", measure(value) + measure(d) * count)


def _check_replace(s, old="", new="", *_, **__):
    if isinstance(s, str) and isinstance(old, str):
        _limit("replace", len(s) + s.count(old) * measure(new))


def _check_wordwrap(s, width=79, break_long_words=True, wrapstring=None, **_):
    # at worst one wrap per character
    _limit("wordwrap", measure(s) * (1 + len(wrapstring or "\n")))


def _check_rows(value, count=1, fill_with=None, **_):
    _limit("batch/slice", max(_int(count), measure(value)))


def _check_tojson(value, indent=None, **_):
    _limit("tojson", measure(value) * (1 + _int(indent)))


def _check_format(value, *args, **kwargs):
    fmt = str(value)
    _limit(
        "format",
        len(fmt)
        + measure(args)
        + measure(kwargs)
        + _percent_widths(fmt, tuple(args) or tuple(kwargs.values())),
    )


_FILTER_CHECKS = {
    "center": _check_center,
    "indent": _check_indent,
    "join": _check_join,
    "replace": _check_replace,
    "wordwrap": _check_wordwrap,
    "batch": _check_rows,
    "slice": _check_rows,
    "tojson": _check_tojson,
    "format": _check_format,
}


def _guarded_filter(name, func):
    """``func`` with its input measured (and, for the filters that grow
    a string by an argument, the result estimated) before it runs."""
    check = _FILTER_CHECKS.get(name)
    passes_context = getattr(func, "jinja_pass_arg", None) is not None

    @functools.wraps(func)
    def guarded(*args, **kwargs):
        values = args[1:] if passes_context else args
        if values:
            _limit(f"the {name} filter's input", measure(values[0]))
        if check is not None and values:
            check(*values, **kwargs)
        return func(*args, **kwargs)

    return guarded


# -- code generation: check the parts of ``~`` before joining them ---------


class _CodeGenerator(compiler.CodeGenerator):
    @compiler.optimizeconst
    def visit_Concat(self, node, frame):
        # jinja2's own visit_Concat, with the tuple passed through
        # environment.checked_parts() first
        if frame.eval_ctx.volatile:
            func_name = (
                "(markup_join if context.eval_ctx.volatile else str_join)"
            )
        elif frame.eval_ctx.autoescape:
            func_name = "markup_join"
        else:
            func_name = "str_join"
        self.write(f"{func_name}(environment.checked_parts((")
        for arg in node.nodes:
            self.visit(arg, frame)
            self.write(", ")
        self.write(")))")


class BoundedSandbox(sandbox.ImmutableSandboxedEnvironment):
    """An immutable sandbox whose values, output and time are bounded."""

    intercepted_binops = frozenset({"*", "**", "%", "+"})
    code_generator_class = _CodeGenerator

    def __init__(self, *args, **kwargs):
        super().__init__(*args, finalize=self._finalize, **kwargs)
        # lorem ipsum generates text in a loop the deadline cannot see
        self.globals.pop("lipsum", None)
        self.filters = {
            name: _guarded_filter(name, func)
            for name, func in self.filters.items()
        }

    @staticmethod
    def _finalize(value):
        """Every ``{{ }}`` value, before it is turned into text."""
        _limit("an expression", measure(value))
        return value

    @staticmethod
    def checked_parts(parts):
        _limit("'~'", sum(measure(p) for p in parts))
        return parts

    def call_binop(self, context, operator, left, right):
        check_binop(operator, left, right)
        return super().call_binop(context, operator, left, right)

    def call(__self, __context, __obj, *args, **kwargs):  # noqa: N805
        owner = getattr(__obj, "__self__", None)
        if isinstance(owner, str):
            _check_str_method(__obj.__name__, owner, args, kwargs)
        return super().call(__context, __obj, *args, **kwargs)

    def wrap_str_format(self, value):
        wrapper = super().wrap_str_format(value)
        if wrapper is None:
            return None
        fmt = value.__self__

        @functools.wraps(wrapper)
        def checked(*args, **kwargs):
            mapping = args[0] if args and isinstance(args[0], dict) else {}
            _limit(
                "str.format()",
                len(fmt)
                + measure(args)
                + measure(kwargs)
                + _format_widths(fmt, args, {**mapping, **kwargs}),
            )
            return wrapper(*args, **kwargs)

        return checked


def render_bounded(template, context, directory):
    """Render ``template`` streamed, within the size and time limits.

    ``directory`` (ending in ``os.sep``) holds the template files; only
    frames compiled from them are traced for the deadline.
    """
    deadline = time.monotonic() + MAX_RENDER_SECONDS

    def line(frame, event, arg):
        if time.monotonic() > deadline:
            raise RenderLimit(
                f"rendering took more than {MAX_RENDER_SECONDS:g} s",
                code="template.timeout",
            )
        return line

    def call(frame, event, arg):
        if frame.f_code.co_filename.startswith(directory):
            return line(frame, event, arg)
        return None

    previous = sys.gettrace()
    sys.settrace(call)
    try:
        parts, size = [], 0
        for chunk in template.generate(**context):
            size += len(chunk)
            if size > MAX_RENDERED_CHARS:
                raise RenderLimit(
                    f"the rendered domain is longer than "
                    f"{MAX_RENDERED_CHARS} characters"
                )
            parts.append(chunk)
        return "".join(parts)
    finally:
        sys.settrace(previous)
