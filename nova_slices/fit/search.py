"""Choose distinct host cells for the guest cells, without permutations.

Each guest cell has the list of host cells it fits on (in strategy
order).  Distinct cells make this a bipartite matching, which answers
"is there any assignment at all?" in polynomial time; a constraint over
the *set* of chosen cells (PCI affinity) is monotone, so the union of
everything still possible bounds it from above.  A depth-first search in
guest order tries candidates in strategy order, skips a candidate that is
interchangeable with one already tried at the same depth, and prunes with
both bounds at every step: a fit comes back at the first leaf, and "no
fit" is usually proved before the first branch.
"""


def has_matching(candidates, used=frozenset()):
    """Can every candidate list get its own cell outside ``used``?"""
    owner = {}

    def augment(i, seen):
        # a free cell first: without this pass every guest cell displaced
        # the previous ones along a chain, O(k^3) over k cells (30 s for
        # 256 guest cells on a 256-cell host)
        for cell in candidates[i]:
            if cell not in used and cell not in owner:
                owner[cell] = i
                return True
        for cell in candidates[i]:
            if cell in used or cell in seen:
                continue
            seen.add(cell)
            if cell not in owner or augment(owner[cell], seen):
                owner[cell] = i
                return True
        return False

    return all(augment(i, set()) for i in range(len(candidates)))


def search(candidates, set_ok=None, equivalent=None):
    """A list of host cells, one per guest cell, or None.

    ``set_ok(cells)`` is a monotone constraint on the chosen set;
    ``equivalent(a, b)`` says host cells a and b are interchangeable.
    """
    set_ok = set_ok or (lambda cells: True)
    k = len(candidates)
    if any(not c for c in candidates) or not has_matching(candidates):
        return None
    if not set_ok(frozenset().union(*map(frozenset, candidates))):
        return None
    chosen = []

    def dfs(i):
        if i == k:
            return set_ok(frozenset(chosen))
        used = frozenset(chosen)
        tried = []
        for cell in candidates[i]:
            if cell in used:
                continue
            if equivalent and any(equivalent(cell, t) for t in tried):
                continue
            tried.append(cell)
            chosen.append(cell)
            rest = candidates[i + 1 :]
            now = frozenset(chosen)
            if (
                has_matching(rest, now)
                and set_ok(now.union(*(frozenset(c) - now for c in rest)))
                and dfs(i + 1)
            ):
                return True
            chosen.pop()
        return False

    return list(chosen) if dfs(0) else None
