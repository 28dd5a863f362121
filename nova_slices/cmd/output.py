"""Printing results and errors: text for people, JSON for programs."""

import json
import sys


def emit_json(value, stream=None):
    stream = stream or sys.stdout
    # one write: json.dump writes every token separately, a million
    # writes for a large host's topology (5 s of a 9 s command)
    stream.write(json.dumps(value, indent=2, sort_keys=False) + "\n")


def emit_errors(errors, fmt, stream=None):
    """Print NovaSlicesError-like errors in the requested format."""
    if fmt == "json":
        emit_json(
            {"errors": [e.to_dict() for e in errors]}, stream or sys.stdout
        )
        return
    stream = stream or sys.stderr
    for err in errors:
        stream.write(f"error [{err.code}]: {err.message}\n")


def emit_rejection(fmt, exc, reasons, describe):
    """A refused request and why: ``{"errors", "reasons"}`` in JSON, or
    the error then one line per reason (``describe(reason)``)."""
    if fmt == "json":
        emit_json({"errors": [exc.to_dict()], "reasons": reasons})
        return exc.exit_status
    emit_errors([exc], "text")
    for reason in reasons:
        print("  " + describe(reason))
    return exc.exit_status


def table(rows, headers):
    """Plain fixed-width table as a string."""
    rows = [[str(c) for c in row] for row in rows]
    widths = [len(h) for h in headers]
    for row in rows:
        for i, cell in enumerate(row):
            widths[i] = max(widths[i], len(cell))
    lines = [
        "  ".join(
            h.ljust(w) for h, w in zip(headers, widths, strict=True)
        ).rstrip()
    ]
    for row in rows:
        lines.append(
            "  ".join(
                c.ljust(w) for c, w in zip(row, widths, strict=True)
            ).rstrip()
        )
    return "\n".join(lines)
