"""Dynamic guests: NUMA-pinned domain XML on hosts without slices."""
