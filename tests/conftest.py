"""pytest's view of the test tree."""

# Nova's functional harness is testtools-based: pytest cannot run those
# tests (each errors with "has no attribute 'test_...'"); stestr does
# (see .stestr.conf and README's test command).
collect_ignore = ["nova_functional"]
