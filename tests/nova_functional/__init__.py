"""Tests in Nova's own functional harness (testtools; run by stestr).

Nova's test base captures each test's output only when asked, as Nova's
own tox does; without it every log line of every service reaches the
console.
"""

import os

os.environ.setdefault("OS_STDOUT_CAPTURE", "1")
os.environ.setdefault("OS_STDERR_CAPTURE", "1")
os.environ.setdefault("OS_TEST_TIMEOUT", "160")
