"""One place for every error this package raises on purpose.

Errors are part of the interface: each carries a stable ``code`` (tests and
JSON output assert on it), the offending option or key, the value, and a
message that says what would be valid.  The CLI turns them into exit status
2 (invalid input) or 1 (a well-formed request that cannot be satisfied) and
never prints a traceback for them.
"""


class NovaSlicesError(Exception):
    """Base class: a failure the operator can act on."""

    #: exit status the CLI uses for this family of errors
    exit_status = 2
    code = "error"

    def __init__(self, message, *, code=None, key=None, value=None):
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        self.key = key
        self.value = value

    def with_status(self, exit_status):
        """This error with another exit status (e.g. 2 for bad input)."""
        self.exit_status = exit_status
        return self

    def to_dict(self):
        d = {"code": self.code, "message": self.message}
        if self.key is not None:
            d["key"] = self.key
        if self.value is not None:
            d["value"] = self.value
        return d

    def __str__(self):
        return self.message


class ConfigError(NovaSlicesError):
    """Bad operator configuration (nova.conf options, slice specs)."""

    code = "config.invalid"


class TemplateError(NovaSlicesError):
    """A slice template is missing, unreadable, broken or renders bad XML."""

    code = "template.invalid"


class HostError(NovaSlicesError):
    """Host data from libvirt (capabilities, node devices) is unusable."""

    code = "host.invalid"


class PlacementError(NovaSlicesError):
    """Placement is unreachable or answered something we cannot use."""

    exit_status = 1
    code = "placement.error"


class NoCandidates(NovaSlicesError):
    """A well-formed request that the host cannot satisfy right now."""

    exit_status = 1
    code = "slice.no-candidates"


class GuestError(NovaSlicesError):
    """A guest operation (spawn, destroy) failed."""

    exit_status = 1
    code = "guest.error"


class RequestError(NovaSlicesError):
    """Flavor extra specs or image properties Nova would refuse."""

    code = "request.invalid"


class NoFit(NovaSlicesError):
    """A guest that does not fit on the host's NUMA cells now, and why."""

    exit_status = 1
    code = "fit.no-fit"

    def __init__(self, message, reasons=(), **kwargs):
        super().__init__(message, **kwargs)
        #: the fitter's Reasons, each with its own stable code
        self.reasons = tuple(reasons)
