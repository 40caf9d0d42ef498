"""A small YAML writer for the manifests modelwiz exports (dicts, lists, str, int, float, bool, None).

Why not JSON (which is valid YAML): people read, diff and edit these files, and they need
comments (the OpenShift notes, what was left out). Why not PyYAML: it is not a dependency, and
the subset we need is small. The output is conservative: a string is written plain only when
every YAML 1.1 and 1.2 reader (PyYAML, go-yaml v2/v3 behind kubectl) takes it as that same
string; anything else is double-quoted (JSON escaping is valid YAML) or, when it spans lines, a
literal block.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from typing import Any

# Plain (unquoted) strings: starts with a letter or '/', then no character YAML gives a meaning.
_PLAIN = re.compile(r"[A-Za-z/][A-Za-z0-9_./@+-]*")
# Words some YAML reader resolves to a bool or null (YAML 1.1 has y/n/yes/no/on/off).
_KEYWORDS = {"y", "n", "yes", "no", "on", "off", "true", "false", "null"}
_INDENT = "  "


def _scalar(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return ".nan"
        if math.isinf(value):
            return ".inf" if value > 0 else "-.inf"
        text = repr(value)
        if "." not in text and "e" in text:
            text = text.replace("e", ".0e", 1)  # YAML 1.1 readers need the '.' (1e+20 -> 1.0e+20)
        return text
    if isinstance(value, str):
        return _string(value)
    raise TypeError(f"cannot write {type(value).__name__} as YAML")


def _string(text: str) -> str:
    if _PLAIN.fullmatch(text) and text.lower() not in _KEYWORDS:
        return text
    return _quoted(text)


_ESCAPES = {"\\": "\\\\", '"': '\\"', "\n": "\\n", "\t": "\\t", "\r": "\\r", "\0": "\\0"}


def _quoted(text: str) -> str:
    """A YAML double-quoted scalar: printable characters as they are, the rest escaped."""
    out = []
    for ch in text:
        if ch in _ESCAPES:
            out.append(_ESCAPES[ch])
        elif ch.isprintable() and ch not in "\u2028\u2029\ufeff":
            out.append(ch)
        elif ord(ch) <= 0xFF:
            out.append(f"\\x{ord(ch):02x}")
        elif ord(ch) <= 0xFFFF:
            out.append(f"\\u{ord(ch):04x}")
        else:
            out.append(f"\\U{ord(ch):08x}")
    return '"' + "".join(out) + '"'


def _block_ok(text: str) -> bool:
    """A literal block keeps `text` exactly: multi-line, printable, no lone CRs or odd spaces."""
    if "\n" not in text.rstrip("\n") or not text.strip():
        return False
    for ch in text:
        if ch in "\n\t":
            continue
        if not ch.isprintable() or ch in "\u2028\u2029\ufeff":
            return False
    return not any(line.endswith((" ", "\t")) for line in text.split("\n"))


def _block(text: str, indent: str) -> list[str]:
    """A `|` literal block: the header (for the key's line), then the content lines."""
    if text.endswith("\n\n"):
        chomp = "+"  # keep: the trailing blank lines are content
    elif text.endswith("\n"):
        chomp = ""  # clip: exactly one final newline
    else:
        chomp = "-"  # strip: no final newline
    body = text[:-1] if text.endswith("\n") else text
    first = next(line for line in body.split("\n") if line)
    # Readers guess the indentation from the first non-empty line; say it when that line
    # itself starts with a space.
    indicator = str(len(_INDENT)) if first.startswith(" ") else ""
    lines = [f"|{indicator}{chomp}"]
    for line in body.split("\n"):
        lines.append(f"{indent}{line}" if line else "")
    return lines


def _key(key: Any) -> str:
    if not isinstance(key, str):
        raise TypeError(f"YAML mapping keys must be strings here, not {type(key).__name__}")
    return _string(key)


def _emit(value: Any, indent: str, out: list[str]) -> None:
    """Write a mapping or sequence whose lines start at `indent`."""
    if isinstance(value, dict):
        for key, item in value.items():
            _emit_entry(f"{indent}{_key(key)}:", item, indent, out)
    elif isinstance(value, (list, tuple)):
        for item in value:
            if isinstance(item, dict) and item:
                first = True
                for key, sub in item.items():
                    prefix = f"{indent}- " if first else f"{indent}  "
                    _emit_entry(f"{prefix}{_key(key)}:", sub, indent + "  ", out)
                    first = False
            elif isinstance(item, (list, tuple)) and item:
                out.append(f"{indent}-")
                _emit(item, indent + _INDENT, out)
            else:
                _emit_entry(f"{indent}-", item, indent, out)
    else:
        raise TypeError("the top level must be a mapping or a sequence")


def _emit_entry(head: str, value: Any, indent: str, out: list[str]) -> None:
    if isinstance(value, dict):
        if not value:
            out.append(f"{head} {{}}")
        else:
            out.append(head)
            _emit(value, indent + _INDENT, out)
    elif isinstance(value, (list, tuple)):
        if not value:
            out.append(f"{head} []")
        else:
            out.append(head)
            _emit(value, indent + _INDENT, out)
    elif isinstance(value, str) and _block_ok(value):
        lines = _block(value, indent + _INDENT)
        out.append(f"{head} {lines[0]}")
        out.extend(lines[1:])
    else:
        out.append(f"{head} {_scalar(value)}")


def dump(value: dict | list) -> str:
    """One YAML document (no `---`), ending with a newline."""
    out: list[str] = []
    if isinstance(value, (dict, list, tuple)) and not value:
        return ("{}" if isinstance(value, dict) else "[]") + "\n"
    _emit(value, "", out)
    return "\n".join(out) + "\n"


def printable(text: str) -> str:
    """`text` for one comment line: what is not printable (line breaks YAML or systemd would
    split on: \\r, \\x85, \\u2028; tabs; control characters a reader refuses) as Python escapes."""
    return "".join(ch if ch.isprintable() else ch.encode("unicode_escape").decode("ascii") for ch in text)


def comment(lines: Iterable[str]) -> str:
    """`# ...` lines (empty input lines become a bare `#`; a `\\n` starts another comment line)."""
    text = ""
    for line in lines:
        for part in line.split("\n"):
            text += f"# {printable(part)}".rstrip() + "\n"
    return text


def dump_all(documents: Iterable[dict], *, header: Iterable[str] = ()) -> str:
    """Several documents separated by `---`, after an optional comment header."""
    parts = [comment(header)] if header else []
    for doc in documents:
        parts.append("---\n" + dump(doc))
    return "".join(parts)
