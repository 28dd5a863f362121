"""slice_spec parsing and slice-forest validation, table-driven."""

import os

import pytest

from nova_slices.errors import ConfigError
from nova_slices.slices.spec import parse_slice_spec
from nova_slices.slices.tree import build_tree

TDIR = "/etc/nova/slices"

SPEC_EXAMPLE = (
    '{name="4_1", "resource_class":"CUSTOM_SLICE_4_GPU_V1", '
    'template_file": "/etc/nova/slice_4_1_gpus.xml", conflict_parent="8_1"}'
)


def test_relaxed_form_from_the_spec_is_accepted():
    spec = parse_slice_spec(SPEC_EXAMPLE, TDIR)
    assert spec.name == "4_1"
    assert spec.resource_class == "CUSTOM_SLICE_4_GPU_V1"
    assert spec.template_file == "/etc/nova/slice_4_1_gpus.xml"
    assert spec.conflict_parent == "8_1"


@pytest.mark.parametrize(
    "raw",
    [
        '{"name": "1_1", "resource_class": "CUSTOM_A", '
        '"template_file": "t.xml.j2"}',
        "{name=1_1, resource_class=CUSTOM_A, template_file=t.xml.j2}",
        "{ 'name': '1_1' , 'resource_class' : 'CUSTOM_A', "
        "'template_file':'t.xml.j2' }",
        '{name="1_1", resource_class:"CUSTOM_A", "template_file"="t.xml.j2"}',
    ],
)
def test_equivalent_forms(raw):
    spec = parse_slice_spec(raw, TDIR)
    assert (
        spec.name,
        spec.resource_class,
        spec.template_file,
        spec.conflict_parent,
    ) == ("1_1", "CUSTOM_A", os.path.join(TDIR, "t.xml.j2"), None)


# (raw value, expected code, words the message must contain)
BAD_SPECS = [
    (
        'name="1_1", resource_class="CUSTOM_A", template_file="t"',
        "config.slice-spec-malformed",
        ["object in braces"],
    ),
    (
        '{"name": "1_1", "resource_class": , "template_file": "t"}',
        "config.slice-spec-malformed",
        ["key=value", "write a JSON object"],
    ),
    (
        '{name="1_1" resource_class="CUSTOM_A"}',
        "config.slice-spec-malformed",
        ["cannot read"],
    ),
    (
        '{name="1_1", resource_class="CUSTOM_A, template_file=t}',
        "config.slice-spec-malformed",
        ["cannot read"],
    ),
    (
        '{name="1_1", name="1_2", resource_class="CUSTOM_A", template_file=t}',
        "config.slice-spec-malformed",
        ["'name' appears twice"],
    ),
    (
        '{"name": "1_1", "resource_class": "CUSTOM_A", "template_file": "t", '
        '"parent": "8_1"}',
        "config.slice-spec-unknown-key",
        ["parent", "conflict_parent"],
    ),
    (
        '{"name": "1_1", "template_file": "t"}',
        "config.slice-spec-missing-key",
        ["resource_class"],
    ),
    (
        '{"name": "1_1", "resource_class": "CUSTOM_A"}',
        "config.slice-spec-missing-key",
        ["template_file"],
    ),
    (
        '{"name": "1_1", "resource_class": "SLICE_1", "template_file": "t"}',
        "config.slice-resource-class-invalid",
        ["SLICE_1", "CUSTOM_[A-Z0-9_]+"],
    ),
    (
        '{"name": "1_1", "resource_class": "CUSTOM_slice", '
        '"template_file": "t"}',
        "config.slice-resource-class-invalid",
        ["CUSTOM_slice"],
    ),
    (
        '{"name": "a b", "resource_class": "CUSTOM_A", "template_file": "t"}',
        "config.slice-name-invalid",
        ["'a b'"],
    ),
    (
        '{"name": 7, "resource_class": "CUSTOM_A", "template_file": "t"}',
        "config.slice-spec-malformed",
        ["name must be a string"],
    ),
    ("[1, 2]", "config.slice-spec-malformed", ["object in braces"]),
    # names Placement would refuse, and a name with a stray newline
    (
        '{"name": "1_1", "resource_class": "CUSTOM_A\\n", '
        '"template_file": "t"}',
        "config.slice-resource-class-invalid",
        ["'CUSTOM_A\\n'", "CUSTOM_[A-Z0-9_]+"],
    ),
    (
        '{"name": "1_1", "resource_class": "CUSTOM_%s", "template_file": "t"}'
        % ("A" * 300),
        "config.slice-resource-class-invalid",
        ["307 characters", "at most 255"],
    ),
    (
        '{"name": "1_1\\n", "resource_class": "CUSTOM_A", '
        '"template_file": "t"}',
        "config.slice-name-invalid",
        ["'1_1\\n'"],
    ),
    # JSON would keep the last of two equal keys
    (
        '{"name": "1_1", "name": "1_2", "resource_class": "CUSTOM_A", '
        '"template_file": "t"}',
        "config.slice-spec-malformed",
        ["'name' appears twice"],
    ),
]


@pytest.mark.parametrize("raw,code,words", BAD_SPECS)
def test_bad_slice_specs(raw, code, words):
    with pytest.raises(ConfigError) as info:
        parse_slice_spec(raw, TDIR)
    err = info.value
    assert err.code == code
    assert err.key == "[libvirt] slice_spec"
    assert "[libvirt] slice_spec" in err.message
    for word in words:
        assert word in err.message


def _spec(name, rc, parent=None):
    parent_part = f', "conflict_parent": "{parent}"' if parent else ""
    return parse_slice_spec(
        f'{{"name": "{name}", "resource_class": "{rc}", '
        f'"template_file": "{name}.j2"{parent_part}}}',
        TDIR,
    )


def seed_tree():
    specs = [
        _spec("8_1", "CUSTOM_S8"),
        _spec("4_1", "CUSTOM_S4", "8_1"),
        _spec("4_2", "CUSTOM_S4", "8_1"),
    ]
    for i in range(1, 9):
        specs.append(_spec(f"1_{i}", "CUSTOM_S1", "4_1" if i <= 4 else "4_2"))
    return build_tree(specs)


def test_seed_tree_shape():
    tree = seed_tree()
    assert [s.name for s in tree.roots()] == ["8_1"]
    assert tree.slices["8_1"].leaves == 8
    assert tree.slices["4_2"].leaves == 4
    assert tree.slices["1_6"].ancestors == ("4_2", "8_1")
    assert tree.conflicts("4_1") == {"8_1", "1_1", "1_2", "1_3", "1_4"}
    assert tree.classes["CUSTOM_S1"].ancestor_classes == (
        "CUSTOM_S4",
        "CUSTOM_S8",
    )
    assert tree.resource_classes() == [
        "CUSTOM_S8",
        "CUSTOM_S8_UNITS",
        "CUSTOM_S4",
        "CUSTOM_S4_UNITS",
        "CUSTOM_S1",
    ]
    order = [s.name for s in tree.parents_first()]
    assert order.index("8_1") < order.index("4_2") < order.index("1_5")


BAD_TREES = [
    (
        [("a", "CUSTOM_A", None), ("a", "CUSTOM_A", None)],
        "config.slice-duplicate-name",
        ["'a' is declared twice"],
    ),
    ([("a", "CUSTOM_A", "a")], "config.slice-self-parent", ["'a'"]),
    (
        [("a", "CUSTOM_A", "zz")],
        "config.slice-unknown-parent",
        ["'zz'", "known slices: a"],
    ),
    (
        [
            ("a", "CUSTOM_A", "b"),
            ("b", "CUSTOM_B", "c"),
            ("c", "CUSTOM_C", "a"),
        ],
        "config.slice-cycle",
        ["cycle", "a -> b -> c -> a"],
    ),
    # 1-GPU slices under a 4-GPU node and directly under the root
    (
        [
            ("r", "CUSTOM_R", None),
            ("q", "CUSTOM_Q", "r"),
            ("x", "CUSTOM_X", "q"),
            ("y", "CUSTOM_X", "r"),
        ],
        "config.slice-class-shape",
        ["'x' and 'y'", "CUSTOM_X"],
    ),
    # same ancestors, different leaf counts
    (
        [
            ("r", "CUSTOM_R", None),
            ("p", "CUSTOM_P", "r"),
            ("q", "CUSTOM_P", "r"),
            ("l1", "CUSTOM_L", "p"),
            ("l2", "CUSTOM_L", "p"),
            ("l3", "CUSTOM_L", "q"),
        ],
        "config.slice-class-shape",
        ["'p' and 'q'", "2 leaves", "1 leaves"],
    ),
    (
        [
            ("r", "CUSTOM_R", None),
            ("k", "CUSTOM_K", "r"),
            ("c", "CUSTOM_R_UNITS", None),
        ],
        "config.slice-class-collision",
        ["CUSTOM_R_UNITS"],
    ),
]


@pytest.mark.parametrize("rows,code,words", BAD_TREES)
def test_bad_trees(rows, code, words):
    specs = [_spec(n, rc, p) for n, rc, p in rows]
    with pytest.raises(ConfigError) as info:
        build_tree(specs)
    assert info.value.code == code
    for word in words:
        assert word in info.value.message


def test_trailing_comma_is_tolerated():
    spec = parse_slice_spec(
        '{name="1_1", resource_class="CUSTOM_A", template_file="t",}', TDIR
    )
    assert spec.name == "1_1"


def test_class_reused_by_descendant_is_refused():
    # a 2-level chain of the same class: the child has a different shape
    specs = [_spec("r", "CUSTOM_R"), _spec("c", "CUSTOM_R", "r")]
    with pytest.raises(ConfigError) as info:
        build_tree(specs)
    assert info.value.code == "config.slice-class-shape"
