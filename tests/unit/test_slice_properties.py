"""Property tests: the parser never crashes, and the unit chain is exact
on arbitrary slice forests, not just the shipped one."""

from hypothesis import given, settings
from hypothesis import strategies as st

from nova_slices.errors import ConfigError
from nova_slices.slices import encoding
from nova_slices.slices.spec import SliceSpec, parse_slice_spec
from nova_slices.slices.tree import build_tree
from tests.unit.test_encoding import _claimable


@given(st.text(max_size=200))
def test_any_string_parses_or_fails_cleanly(raw):
    try:
        spec = parse_slice_spec(raw, "/t")
    except ConfigError as exc:
        assert exc.code.startswith("config.")
        assert "[libvirt] slice_spec" in exc.message
    else:
        assert isinstance(spec, SliceSpec)


_keys = st.sampled_from(
    ["name", "resource_class", "template_file", "conflict_parent", "x"]
)
_values = st.text(alphabet="AZaz09_-.\"'=:, {}", max_size=12)


@given(
    st.dictionaries(_keys, _values, max_size=5),
    st.sampled_from(["=", ":"]),
    st.booleans(),
)
def test_relaxed_pairs_parse_or_fail_cleanly(pairs, sep, quote_keys):
    body = ", ".join(
        (f'"{k}"' if quote_keys else k) + f'{sep}"{v}"'
        for k, v in pairs.items()
    )
    try:
        parse_slice_spec("{" + body + "}", "/t")
    except ConfigError as exc:
        assert exc.code.startswith("config.")


@st.composite
def uniform_forests(draw):
    """Forests where each level has one class and a uniform fan-out."""
    roots = draw(st.integers(1, 2))
    fanouts = draw(st.lists(st.integers(1, 3), min_size=0, max_size=2))
    specs, level = [], [(f"r{i}", None) for i in range(roots)]
    depth = 0
    while level:
        nxt = []
        for name, parent in level:
            specs.append(
                SliceSpec(name, f"CUSTOM_L{depth}", f"{name}.j2", parent)
            )
            if depth < len(fanouts):
                nxt += [(f"{name}_{k}", name) for k in range(fanouts[depth])]
        level, depth = nxt, depth + 1
    return specs


@settings(max_examples=60, deadline=None)
@given(uniform_forests(), st.data())
def test_unit_chain_is_exact_on_random_forests(specs, data):
    tree = build_tree(specs)
    names = list(tree.slices)
    in_use = set()
    for _ in range(12):
        name = data.draw(st.sampled_from(names))
        oracle = name not in in_use and not (tree.conflicts(name) & in_use)
        assert _claimable(tree, in_use, name) == oracle
        if oracle:
            in_use.add(name)
        elif name in in_use and data.draw(st.booleans()):
            in_use.discard(name)
    for rc in tree.classes:
        request = encoding.slice_request(tree, rc)
        chain = [suffix for suffix in request.groups if suffix]
        assert len(request.same_subtree) == len(chain) - 1
