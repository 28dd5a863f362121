"""The slice forest: which slices overlap, and the shape of each class.

A slice conflicts with its ancestors and descendants (the libvirt-slices
spec's ``conflict_parent``).  Placement cannot express that directly; the
unit-chain encoding (DESIGN.md section 4) can, provided every slice of one
resource class has the same *shape*: the same chain of ancestor classes
and the same number of leaves beneath it.  That is checked here, once, at
startup, so that a request for a class means the same thing whichever
slice answers it.
"""

import dataclasses

from nova_slices.errors import ConfigError
from nova_slices.slices.spec import OPTION, parse_slice_spec

UNITS_SUFFIX = "_UNITS"
#: The compute node's own class on a slice host: one unit per leaf slice.
#: Every slice request takes its leaf count from the root too, so every
#: candidate touches the root provider -- Nova's scheduler only gives a
#: host the candidates that do (DESIGN.md section 7) -- and the root
#: counts the leaves in use.  It never binds wrongly: slices in use are
#: disjoint subtrees, whose leaves sum to at most the forest's.
HOST_UNITS = "CUSTOM_SLICE_HOST_UNITS"


def units_class(resource_class):
    """The class a non-leaf slice uses to count the leaves beneath it."""
    return resource_class + UNITS_SUFFIX


@dataclasses.dataclass(frozen=True)
class Slice:
    name: str
    resource_class: str
    template_file: str
    parent: str | None
    children: tuple[str, ...]
    #: ancestor names, nearest first
    ancestors: tuple[str, ...]
    #: number of leaf slices beneath (1 for a leaf)
    leaves: int

    @property
    def is_leaf(self):
        return not self.children


@dataclasses.dataclass(frozen=True)
class ClassShape:
    """What every slice of one resource class has in common."""

    resource_class: str
    #: ancestor classes, nearest first
    ancestor_classes: tuple[str, ...]
    leaves: int
    is_leaf: bool
    slices: tuple[str, ...]


@dataclasses.dataclass(frozen=True)
class SliceTree:
    """An immutable, validated slice forest."""

    slices: dict  # name -> Slice, in configuration order
    classes: dict  # resource class -> ClassShape

    def __bool__(self):
        return bool(self.slices)

    def roots(self):
        return [s for s in self.slices.values() if s.parent is None]

    @property
    def leaves(self):
        """Leaf slices of the whole forest (the root's HOST_UNITS)."""
        return sum(s.leaves for s in self.roots())

    def descendants(self, name):
        out, stack = [], list(self.slices[name].children)
        while stack:
            child = stack.pop()
            out.append(child)
            stack.extend(self.slices[child].children)
        return out

    def conflicts(self, name):
        """Names that cannot be in use together with ``name``."""
        return set(self.slices[name].ancestors) | set(self.descendants(name))

    def parents_first(self):
        """Slices ordered so that every parent precedes its children."""
        return sorted(self.slices.values(), key=lambda s: (len(s.ancestors),))

    def resource_classes(self):
        """Every custom class the tree reports (tokens and units)."""
        names = []
        for shape in self.classes.values():
            names.append(shape.resource_class)
            if not shape.is_leaf:
                names.append(units_class(shape.resource_class))
        return names


def _fail(message, code, value=None):
    return ConfigError(message, code=code, key=OPTION, value=value)


def build_tree(specs):
    """Validate a list of SliceSpec as a forest and return a SliceTree."""
    by_name = {}
    for spec in specs:
        if spec.name in by_name:
            raise _fail(
                f"{OPTION}: slice name {spec.name!r} is declared twice; "
                "names must be unique",
                "config.slice-duplicate-name",
                spec.name,
            )
        by_name[spec.name] = spec
    for spec in specs:
        if spec.conflict_parent is None:
            continue
        if spec.conflict_parent == spec.name:
            raise _fail(
                f"{OPTION}: slice {spec.name!r} names itself as "
                "conflict_parent",
                "config.slice-self-parent",
                spec.name,
            )
        if spec.conflict_parent not in by_name:
            raise _fail(
                f"{OPTION}: slice {spec.name!r} has conflict_parent "
                f"{spec.conflict_parent!r}, which is not a slice; known "
                f"slices: {', '.join(sorted(by_name))}",
                "config.slice-unknown-parent",
                spec.conflict_parent,
            )
    ancestors = {}
    for spec in specs:
        chain, seen, cur = [], {spec.name}, spec.conflict_parent
        while cur is not None:
            if cur in seen:
                cycle = " -> ".join([spec.name, *chain, cur])
                raise _fail(
                    f"{OPTION}: conflict_parent forms a cycle: {cycle}; "
                    "slices must form a forest",
                    "config.slice-cycle",
                    spec.name,
                )
            seen.add(cur)
            chain.append(cur)
            cur = by_name[cur].conflict_parent
        ancestors[spec.name] = tuple(chain)
    children = {s.name: [] for s in specs}
    for spec in specs:
        if spec.conflict_parent:
            children[spec.conflict_parent].append(spec.name)

    leaves = {}

    def count(name):
        if name not in leaves:
            kids = children[name]
            leaves[name] = sum(count(k) for k in kids) if kids else 1
        return leaves[name]

    slices = {}
    for spec in specs:
        slices[spec.name] = Slice(
            spec.name,
            spec.resource_class,
            spec.template_file,
            spec.conflict_parent,
            tuple(children[spec.name]),
            ancestors[spec.name],
            count(spec.name),
        )
    classes = _class_shapes(slices)
    return SliceTree(slices, classes)


def _class_shapes(slices):
    shapes = {}
    for s in slices.values():
        key = (
            tuple(slices[a].resource_class for a in s.ancestors),
            s.leaves,
            s.is_leaf,
        )
        shape = shapes.get(s.resource_class)
        if shape is None:
            shapes[s.resource_class] = ClassShape(
                s.resource_class, key[0], key[1], key[2], (s.name,)
            )
            continue
        if (shape.ancestor_classes, shape.leaves, shape.is_leaf) != key:
            first = shape.slices[0]
            raise _fail(
                f"{OPTION}: slices {first!r} and {s.name!r} share resource "
                f"class {s.resource_class} but differ in shape "
                f"({_describe(shape.ancestor_classes, shape.leaves)} vs "
                f"{_describe(key[0], key[1])}); every slice of a class "
                "must have the same ancestor classes and number of leaves",
                "config.slice-class-shape",
                s.resource_class,
            )
        shapes[s.resource_class] = dataclasses.replace(
            shape, slices=shape.slices + (s.name,)
        )
    tokens = set(shapes)
    for rc, shape in shapes.items():
        if HOST_UNITS in (rc, units_class(rc)):
            raise _fail(
                f"{OPTION}: resource class {rc} names the compute node's "
                f"own class {HOST_UNITS}; rename it",
                "config.slice-class-collision",
                rc,
            )
        if rc in shape.ancestor_classes:
            raise _fail(
                f"{OPTION}: resource class {rc} is used by a slice and by "
                "one of its ancestors",
                "config.slice-class-shape",
                rc,
            )
        if not shape.is_leaf and units_class(rc) in tokens:
            raise _fail(
                f"{OPTION}: resource class {units_class(rc)} is both a "
                f"slice class and the units class of {rc}; rename one",
                "config.slice-class-collision",
                units_class(rc),
            )
    return shapes


def _describe(ancestor_classes, leaves):
    chain = " > ".join(ancestor_classes) or "no ancestors"
    return f"ancestors {chain}, {leaves} leaves"


def load_tree(conf):
    """Build the slice tree from ``conf.libvirt.slice_spec``."""
    template_dir = conf.libvirt.slice_template_dir
    specs = [
        parse_slice_spec(raw, template_dir) for raw in conf.libvirt.slice_spec
    ]
    return build_tree(specs)
