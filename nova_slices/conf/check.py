"""oslo.config's refusals, made at start-up and named.

oslo.config checks an option's type, range and choices only when the value
is first read, and then raises ``ConfigFileValueError`` naming neither the
group nor the value.  A command that reads the option late fails with what
looks like an internal error; one that never reads it runs on a file that
is wrong.  So :func:`check_values` reads every registered option once,
right after parsing, and each refusal becomes a :class:`ConfigError` with
the ``[group] option``, the value as written, the file and what is valid.
:func:`parse` does the same for the files themselves (missing, unreadable,
unparsable, not text), and :func:`check_legacy_names` refuses a legacy and
a current name both set, one of which oslo.config would silently ignore.
"""

import contextlib
import glob
import io
import os
import re
import sys

from oslo_config import cfg, types

from nova_slices.errors import ConfigError


def parse(conf, args, **kwargs):
    """``conf(args, **kwargs)``, its file errors as ConfigErrors."""
    said = io.StringIO()
    try:
        with contextlib.redirect_stderr(said):
            conf(list(args), **kwargs)
    except SystemExit:
        # a command-line option's value from a file (oslo.log's debug...)
        # is checked while parsing: oslo.config prints argparse's refusal
        # and exits 1
        raise _command_line_option_error(said.getvalue()) from None
    except cfg.ConfigFilesNotFoundError as exc:
        files = ", ".join(exc.config_files)
        raise _file_error(
            files, "no such file", "config.file-missing"
        ) from None
    except cfg.ConfigFilesPermissionDeniedError as exc:
        files = ", ".join(exc.config_files)
        raise _file_error(
            files, "permission denied", "config.file-unreadable"
        ) from None
    except cfg.ConfigDirNotFoundError as exc:
        raise ConfigError(
            f"--config-dir {exc.config_dir}: no such directory",
            code="config.dir-missing",
            key="--config-dir",
            value=exc.config_dir,
        ) from None
    except cfg.ConfigFileParseError as exc:
        raise _file_error(
            exc.config_file,
            f"cannot be parsed: {exc.msg}; a configuration file holds "
            "[section] headers and option = value lines",
            "config.file-unparsable",
        ) from None
    except UnicodeDecodeError as exc:
        path = _undecodable(args, kwargs)
        raise _file_error(
            path,
            f"is not {exc.encoding} text (byte {exc.object[exc.start]:#04x} "
            f"at offset {exc.start}); a configuration file is text",
            "config.file-not-text",
        ) from None
    except IsADirectoryError as exc:
        raise _file_error(
            exc.filename,
            "is a directory; give it with --config-dir",
            "config.file-unreadable",
        ) from None
    except OSError as exc:
        raise _file_error(
            exc.filename,
            f"cannot be read: {exc.strerror}",
            "config.file-unreadable",
        ) from None
    except cfg.Error as exc:
        raise ConfigError(
            f"configuration error: {exc}", code="config.invalid"
        ) from None
    # whatever else was said while parsing (a warning) is not ours to
    # swallow
    sys.stderr.write(said.getvalue())


def _command_line_option_error(text):
    found = re.search(r"argument --([\w-]+): (.*)", text)
    if not found:
        return ConfigError(
            f"configuration error: {text.strip() or 'refused while parsing'}",
            code="config.invalid",
        )
    name, reason = found.group(1).replace("-", "_"), found.group(2).strip()
    value = reason.rpartition(": ")[2]
    valid = "; valid: true or false" if "Boolean" in reason else ""
    return ConfigError(
        f"[DEFAULT] {name} = {value!r} in the configuration files: "
        f"{reason}{valid}",
        code="config.invalid",
        key=f"[DEFAULT] {name}",
        value=value,
    )


def _file_error(path, why, code):
    return ConfigError(
        f"configuration file {path} {why}", code=code, key=path, value=path
    )


def _candidate_files(args, kwargs):
    """The files ``conf(args, **kwargs)`` may have read, in order."""
    args = list(args)
    files = [
        args[i + 1]
        for i, arg in enumerate(args[:-1])
        if arg == "--config-file"
    ] or list(kwargs.get("default_config_files") or ())
    dirs = [
        args[i + 1] for i, arg in enumerate(args[:-1]) if arg == "--config-dir"
    ] or cfg.find_config_dirs(kwargs.get("project"), kwargs.get("prog"))
    for directory in dirs:
        files += sorted(glob.glob(os.path.join(directory, "*.conf")))
    return files


def _undecodable(args, kwargs):
    """The first candidate file that open() cannot decode, as oslo reads."""
    for path in _candidate_files(args, kwargs):
        try:
            with open(path) as f:
                f.read()
        except UnicodeDecodeError:
            return path
        except OSError:
            continue
    return "(one of the configuration files)"


# -- option values -----------------------------------------------------------


#: types whose empty value oslo.config reads as None, not as an error
_EMPTY_IS_NONE = (types.Integer, types.Float, types.Boolean)


def _read(conf, group, name, known):
    try:
        value = conf[group][name] if group else conf[name]
    except (cfg.Error, ValueError) as exc:
        raise _value_error(conf, group, name, known, exc) from None
    opt = known.get((group or "DEFAULT", name))
    if (
        value is None
        and opt is not None
        and opt.default is not None
        and isinstance(opt.type, _EMPTY_IS_NONE)
    ):
        # "reserved_host_memory_mb =" would replace the default by None
        raise _value_error(conf, group, name, known, ValueError("it is empty"))
    return value


def check_values(conf, known, groups=None):
    """Read every option (of ``groups``, default all) once, or refuse.

    ``known`` maps ``(group, name)`` to the declared Opt (group ``DEFAULT``
    for the default group): its type finds which written value is bad and
    says what would be valid.
    """
    for name in list(conf) if groups is None else list(groups):
        value = _read(conf, None, name, known)
        if isinstance(value, cfg.ConfigOpts.GroupAttr):
            for opt_name in list(value):
                _read(conf, name, opt_name, known)


def raw_values(conf):
    """``(file, section, key, value)`` as written, in the order read."""
    files = list(conf.config_file or ())
    for directory in conf.config_dirs or ():
        files += sorted(glob.glob(os.path.join(directory, "*.conf")))
    out = []
    for path in files:
        sections = {}
        try:
            cfg.ConfigParser(path, sections).parse()
        except (OSError, ValueError):
            continue  # oslo.config read it; a race with an editor
        for section, keys in sections.items():
            for key, values in keys.items():
                out.extend((path, section, key, v) for v in values)
    return out


def _section(name):
    """oslo.config's group name normalization: DEFAULT, else lower case."""
    return name if name == "DEFAULT" else name.lower()


def _names(group, name, opt):
    """Every (section, key) that sets this option, current name first."""
    out = [(group, name)]
    for old in getattr(opt, "deprecated_opts", ()) or ():
        out.append((_section(old.group or group), old.name or name))
    return out


def _written(raw, names):
    return [
        (path, value)
        for path, section, key, value in raw
        if (_section(section), key) in names
    ]


def describe(opt_type):
    """What a value of ``opt_type`` must be, from the type's own fields."""
    choices = getattr(opt_type, "choices", None)
    if choices:
        return "one of " + ", ".join(str(c) for c in choices)
    words = [getattr(opt_type, "type_name", None) or "value"]
    if getattr(opt_type, "min", None) is not None:
        words.append(f">= {opt_type.min}")
    if getattr(opt_type, "max", None) is not None:
        words.append(f"<= {opt_type.max}")
    if getattr(opt_type, "max_length", None):
        words.append(f"of at most {opt_type.max_length} characters")
    text = " ".join(words)
    return ("an " if text[0] in "aeiou" else "a ") + text


def _value_error(conf, group, name, known, exc):
    section = group or "DEFAULT"
    key = f"[{section}] {name}"
    opt = known.get((section, name))
    written = _written(raw_values(conf), _names(section, name, opt))
    reason = str(exc)
    path, value = written[-1] if written else (None, None)
    if opt is not None and written:
        # oslo.config converts every value of a multi-valued option and
        # only the last one written of any other
        for where, text in written if opt.multi else written[-1:]:
            try:
                opt.type(text)
            except ValueError as bad:
                path, value, reason = where, text, str(bad)
                break
    expected = f"; expected {describe(opt.type)}" if opt is not None else ""
    if isinstance(exc, (cfg.TemplateSubstitutionError, cfg.NoSuchOptError)):
        # oslo.config names the option being read, not the missing one
        reason = "its '$' refers to no option"
        expected = "; write '$$' for a literal '$'"
    where = f" in {path}" if path else ""
    return ConfigError(
        f"{key} = {value!r}{where} is not valid: {reason}{expected}",
        code="config.invalid-value",
        key=key,
        value=value,
    )


# -- legacy names ------------------------------------------------------------


def check_legacy_names(conf, known):
    """Refuse a legacy name set next to its current one.

    oslo.config reads the current name and silently ignores the legacy one
    (``[devices] enabled_vgpu_types`` beside ``enabled_mdev_types``, a
    ``[vgpu_<type>]`` group beside ``[mdev_<type>]``).  Two option names
    that agree are harmless, and so are those of a multi-valued option
    (both are read); two groups for one thing are refused outright, since
    each may hold different options.
    """
    raw = None
    for (group, name), opt in sorted(known.items()):
        for old in getattr(opt, "deprecated_opts", ()) or ():
            old_group = _section(old.group or group)
            old_name = old.name or name
            raw = raw if raw is not None else raw_values(conf)
            if old_group != group:
                _check_groups(raw, group, old_group)
                continue
            _check_names(raw, opt, group, name, old_name)


def _check_groups(raw, group, old_group):
    new = [p for p, s, _, _ in raw if _section(s) == group]
    old = [p for p, s, _, _ in raw if _section(s) == old_group]
    if new and old:
        raise ConfigError(
            f"[{old_group}] (in {old[0]}) and [{group}] (in {new[0]}) are "
            f"the legacy and the current name of one group and both are "
            f"set; only one would be read: keep [{group}] alone",
            code="config.legacy-group-conflict",
            key=f"[{group}]",
            value=f"[{old_group}]",
        )


def _check_names(raw, opt, group, name, old_name):
    if opt.multi:
        return  # oslo.config reads the values of both names
    new = _written(raw, [(group, name)])
    old = _written(raw, [(group, old_name)])
    if not (new and old):
        return
    try:
        same = opt.type(new[-1][1]) == opt.type(old[-1][1])
    except ValueError:
        same = False
    if not same:
        raise ConfigError(
            f"[{group}] {old_name} = {old[-1][1]!r} (in {old[-1][0]}) and "
            f"[{group}] {name} = {new[-1][1]!r} (in {new[-1][0]}) disagree; "
            f"{old_name} is the legacy name of {name} and would be "
            f"ignored: set {name} alone",
            code="config.legacy-option-conflict",
            key=f"[{group}] {name}",
            value=old[-1][1],
        )
