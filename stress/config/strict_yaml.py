"""A YAML reader for files people write by hand, with bounded work and one-line errors.

PyYAML's ``safe_load`` accepts things a scenarios file should not: aliases that expand a
346-byte file into billions of values (an "alias bomb"), nesting deep enough to overflow
Python's stack, duplicate keys (the last one silently wins) and YAML 1.1 keys that are not
text (``yes`` becomes ``True``, ``0x10`` becomes ``16``, ``1`` and ``"1"`` merge). This reader
checks all of that on the node graph, before any Python value is built, so a hostile file
costs time and memory in proportion to its size.
"""

from __future__ import annotations

from typing import Any

import yaml

from stress.errors import ConfigError

MAX_BYTES = 1_000_000  # a scenarios file is a few kilobytes; this is far above any real one
MAX_DEPTH = 50  # levels of nesting; a scenarios file uses four
MAX_ALIAS_VALUES = 10_000  # values that aliases may repeat, counted as expanded, in all

_STR_TAG = "tag:yaml.org,2002:str"
_MERGE_TAG = "tag:yaml.org,2002:merge"
_TYPE_WORDS = {
    "tag:yaml.org,2002:bool": "a true/false value",
    "tag:yaml.org,2002:int": "a number",
    "tag:yaml.org,2002:float": "a number",
    "tag:yaml.org,2002:null": "null",
    "tag:yaml.org,2002:timestamp": "a date",
}


class _Refused(Exception):
    """Raised inside the loader; ``load`` turns it into a ConfigError with the file name."""

    def __init__(self, message: str, mark: Any = None) -> None:
        super().__init__(message)
        self.mark = mark


class _StrictLoader(yaml.SafeLoader):
    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._depth = 0
        self._alias_values = 0
        # Expanded size of each finished node, by id: an alias costs its target's size.
        self._sizes: dict[int, int] = {}

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()  # type: ignore[no-untyped-call]
            target = self.anchors.get(event.anchor)
            if target is not None:
                size = self._sizes.get(id(target))
                if size is None:  # the anchor's own value is still being read
                    raise _Refused(f"alias *{event.anchor} refers to its own anchor",
                                   event.start_mark)
                self._alias_values += size
                if self._alias_values > MAX_ALIAS_VALUES:
                    raise _Refused(f"aliases expand to more than {MAX_ALIAS_VALUES:,} values "
                                   "(an alias bomb?); write the values out instead",
                                   event.start_mark)
                return super().compose_node(parent, index)
        self._depth += 1
        if self._depth > MAX_DEPTH:
            raise _Refused(f"nesting deeper than {MAX_DEPTH} levels",
                           self.peek_event().start_mark)  # type: ignore[no-untyped-call]
        try:
            node = super().compose_node(parent, index)
        finally:
            self._depth -= 1
        self._sizes[id(node)] = 1 + sum(self._sizes.get(id(child), 1)
                                        for child in _children(node))
        if isinstance(node, yaml.MappingNode):
            _check_keys(node)
        return node


def _children(node: Any) -> list[Any]:
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    if isinstance(node, yaml.MappingNode):
        return [part for pair in node.value for part in pair]
    return []


def _check_keys(node: yaml.MappingNode) -> None:
    seen: set[str] = set()
    for key, _value in node.value:
        if key.tag == _MERGE_TAG:
            continue  # '<<: *defaults' merges a mapping in; its keys may be overridden
        if not isinstance(key, yaml.ScalarNode):
            raise _Refused("a key is a list or a mapping; keys must be text", key.start_mark)
        text = _clip(key.value)
        if key.tag != _STR_TAG:
            what = _TYPE_WORDS.get(key.tag, key.tag)
            raise _Refused(f"key {text} is read as {what} by YAML, not as text; "
                           f"quote it: '{text}'", key.start_mark)
        if key.value in seen:
            raise _Refused(f"key {text!r} appears twice in one mapping; keep one",
                           key.start_mark)
        seen.add(key.value)


def _clip(text: str, limit: int = 40) -> str:
    return text if len(text) <= limit else text[:limit] + "..."


def decode(data: bytes, source: str, what: str = "a scenarios file") -> str:
    """UTF-8 text of a file's bytes, or a ConfigError naming the first bad byte."""
    if len(data) > MAX_BYTES:
        raise ConfigError(f"{source}: {len(data):,} bytes; {what} may hold at most "
                          f"{MAX_BYTES:,}")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{source}: not UTF-8 text (byte 0x{data[exc.start]:02x} at offset "
                          f"{exc.start}); save the file as UTF-8") from None


def load(text: str, source: str) -> Any:
    """The document in ``text`` as plain Python values; every refusal is one ConfigError line."""
    if len(text) > MAX_BYTES:
        raise ConfigError(f"{source}: {len(text):,} characters; a scenarios file may hold at "
                          f"most {MAX_BYTES:,}")
    loader = _StrictLoader(text)
    try:
        return loader.get_single_data()
    except _Refused as exc:
        raise ConfigError(f"{source}:{_line(exc.mark)}: {exc}") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        problem = getattr(exc, "problem", None) or "syntax error"
        raise ConfigError(f"{source}:{_line(mark)} is not valid YAML ({_clip(str(problem))}); "
                          "fix the syntax there") from None
    except (ValueError, OverflowError) as exc:  # a 5,000-digit number, a 13th month
        raise ConfigError(f"{source}: a value cannot be read ({_clip(str(exc), 60)}); "
                          "write it as a plain number or quote it") from None
    except RecursionError:  # not reached with MAX_DEPTH, but never a traceback
        raise ConfigError(f"{source}: nested too deeply; flatten the file") from None
    finally:
        loader.dispose()


def _line(mark: Any) -> str:
    return f" line {mark.line + 1}" if mark is not None else ""
