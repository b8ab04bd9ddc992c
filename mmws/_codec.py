"""The one private cattrs converter of mmws, and every wire rule it applies.

Only this module knows how the wire spells things. The rules:

1. Wire keys are camelCase; attributes are snake_case (``orderId`` <-> ``order_id``).
2. ``int`` fields take JSON integers only (``true`` is not ``1``, ``"123"`` is not ``123``);
   ``float`` fields take integers and floats; ``bool`` fields take ``true``/``false`` only;
   ``str`` fields take strings only. Anything else is a decode error naming the field.
3. Timestamps are ISO-8601 strings; a trailing ``Z`` means UTC and a naive value is taken as
   UTC. They become timezone-aware ``datetime`` objects in UTC, and go back out as ``...Z``.
4. Enums are tolerant: a known value becomes the member (case-insensitively, so the bets'
   lowercase ``undecided`` is ``SettlementStatus.UNDECIDED``); an unknown value stays a plain
   ``str``, so a status the server adds tomorrow decodes today.
5. Free-form objects (``sentData``, ``receivedData``, ``scores``) stay mappings with the
   wire's own keys, deep-frozen (read-only mappings and tuples all the way down).
6. Keys we do not know are kept in the model's ``extra`` mapping (deep-frozen), spelled as
   on the wire, and written back out unchanged: nothing the server sends is dropped.
7. A missing identity key (``orderId``, ``betId``, ``fixtureId``) is a decode error; the old
   API reference's ``id`` is accepted for ``orderId`` and ``betId``.
8. Encoding omits attributes that are ``None``, so a partial payload stays partial.

The global cattrs converter is never used: it would let another library's hooks change how
our wire is read.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable, Mapping
from datetime import datetime, timezone
from enum import Enum
from types import UnionType
from typing import Any, Final, TypeVar, Union, get_args, get_origin

import attrs
import cattrs
from cattrs.gen import make_dict_structure_fn, make_dict_unstructure_fn, override

from mmws._frozen import FrozenMap, LazyFrozenMap, freeze, freeze_members, thaw
from mmws.errors import RemoteProtocolError

__all__ = [
    "JSON_BACKEND",
    "UNDECODABLE",
    "ModelCodec",
    "camel",
    "converter",
    "load_object",
    "model_codec",
    "parse_timestamp",
    "preview",
    "slot_constructor",
    "undecodable",
]

T = TypeVar("T")
Hook = Callable[[Any, Any], Any]

converter = cattrs.Converter(detailed_validation=False, forbid_extra_keys=False)

_CAMEL_RE = re.compile(r"_([a-z0-9])")


def camel(name: str) -> str:
    """``order_id`` -> ``orderId``."""
    return _CAMEL_RE.sub(lambda m: m.group(1).upper(), name)


def _kind(value: Any) -> str:
    return "null" if value is None else type(value).__name__


def _show(value: Any) -> str:
    """A short, safe rendering of a wire value for an error message: never the whole of a
    huge string or integer, never a deep ``repr`` of nested containers."""
    tp = type(value)
    if tp in (dict, list, tuple, FrozenMap):
        return f"({len(value)} items)"
    if tp is str:
        return repr(value[:40]) + ("..." if len(value) > 40 else "")
    if tp is int and value.bit_length() > 128:
        return f"({value.bit_length()} bits)"
    return repr(value)[:40]


def _int(value: Any, _: Any = None) -> int | None:
    if value is None or (type(value) is int):
        return value  # type: ignore[no-any-return,unused-ignore]
    raise TypeError(f"expected an integer, got {_kind(value)} {_show(value)}")


def _float(value: Any, _: Any = None) -> float | None:
    tp = type(value)
    if tp is float or value is None:
        return value  # type: ignore[no-any-return,unused-ignore]
    if tp is int:
        try:
            return float(value)
        except OverflowError:
            raise ValueError(f"number too large for a float: {_show(value)}") from None
    raise TypeError(f"expected a number, got {_kind(value)} {_show(value)}")


def _bool(value: Any, _: Any = None) -> bool | None:
    if value is None or type(value) is bool:
        return value  # type: ignore[no-any-return,unused-ignore]
    raise TypeError(f"expected true or false, got {_kind(value)} {_show(value)}")


def _str(value: Any, _: Any = None) -> str | None:
    if value is None or type(value) is str:
        return value  # type: ignore[no-any-return,unused-ignore]
    raise TypeError(f"expected a string, got {_kind(value)} {_show(value)}")


_TIMESTAMPS: dict[str, datetime] = {}
"""Timestamps parsed lately (an order's ``createdAt`` comes with each of its updates):
``datetime`` is immutable, so every event may share one. Emptied when it reaches
:data:`_TIMESTAMPS_KEPT` entries."""
_TIMESTAMPS_KEPT: Final = 4096


def parse_timestamp(value: Any, _: Any = None) -> datetime | None:
    """ISO-8601 text (``Z`` or an offset; naive means UTC) -> aware ``datetime`` in UTC."""
    if value is None:
        return None
    if type(value) is not str:
        raise TypeError(f"expected an ISO-8601 timestamp, got {_kind(value)} {_show(value)}")
    known = _TIMESTAMPS.get(value)
    if known is not None:
        return known
    parsed = _parse_timestamp(value)
    if len(_TIMESTAMPS) >= _TIMESTAMPS_KEPT:
        _TIMESTAMPS.clear()
    _TIMESTAMPS[value] = parsed
    return parsed


def _parse_timestamp(value: str) -> datetime:
    text = value[:-1] + "+00:00" if value.endswith(("Z", "z")) else value
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"not an ISO-8601 timestamp: {_show(value)}") from None
    tz = parsed.tzinfo
    if tz is timezone.utc:
        return parsed
    if tz is None:
        return parsed.replace(tzinfo=timezone.utc)
    try:
        return parsed.astimezone(timezone.utc)
    except OverflowError:
        raise ValueError(f"timestamp out of range in UTC: {_show(value)}") from None


def _mapping(value: Any, _: Any = None) -> Mapping[str, Any] | None:
    if value is None:
        return None
    if type(value) is not dict:
        raise TypeError(f"expected an object, got {_kind(value)} {_show(value)}")
    return freeze(value)  # type: ignore[no-any-return]


def _tolerant_enum(enum_cls: type[Enum]) -> Hook:
    lookup: dict[str, Any] = {}
    for member in enum_cls:
        lookup[member.value] = member
        lookup[member.value.lower()] = member
        lookup[member.value.upper()] = member

    def hook(value: Any, _: Any = None) -> Any:
        if value is None:
            return None
        if type(value) is not str:
            raise TypeError(f"expected a string, got {_kind(value)} {_show(value)}")
        return lookup.get(value, value)

    return hook


def _required(hook: Hook) -> Hook:
    """A field that is not ``... | None`` (an identity key) must not be ``null`` either."""

    def required(value: Any, _: Any = None) -> Any:
        if value is None:
            raise TypeError("expected a value, got null")
        return hook(value, _)

    return required


def _members(tp: Any) -> tuple[Any, bool]:
    """A field's resolved type -> its first type that is not ``None``, and whether ``None``
    is allowed (``int | None`` -> ``(int, True)``)."""
    members = get_args(tp) if get_origin(tp) in (Union, UnionType) else (tp,)
    return next(a for a in members if a is not type(None)), type(None) in members


def _hook_for(tp: Any) -> Hook:
    """The strict hook for one field's resolved type (rules 2 to 5)."""
    first, optional = _members(tp)
    hook = _base_hook_for(tp, first)
    return hook if optional else _required(hook)


def _base_hook_for(tp: Any, first: Any) -> Hook:
    if isinstance(first, type) and issubclass(first, Enum):
        return _tolerant_enum(first)
    simple: dict[Any, Hook] = {
        int: _int,
        float: _float,
        bool: _bool,
        str: _str,
        datetime: parse_timestamp,
    }
    if first in simple:
        return simple[first]
    if _is_mapping(first):
        return _mapping
    raise TypeError(f"no wire rule for {tp!r}")  # a bug in a model, caught by the tests


def _exact_type(tp: Any) -> type | None:
    """``int``, ``float``, ``bool`` or ``str`` when a field of type ``tp`` takes a value of
    exactly that type as it is; None when every value goes through its hook."""
    first = _members(tp)[0]
    return first if first in (int, float, bool, str) else None


def _is_mapping(tp: Any) -> bool:
    return getattr(tp, "__origin__", None) is Mapping or tp is Mapping


def _is_enum_field(tp: Any) -> bool:
    return any(isinstance(a, type) and issubclass(a, Enum) for a in getattr(tp, "__args__", ()))


def _enum_value(value: Any) -> Any:
    return value.value if isinstance(value, Enum) else value


def _unstructure_datetime(value: datetime) -> str:
    text = value.astimezone(timezone.utc).isoformat()
    return text[:-6] + "Z" if text.endswith("+00:00") else text


converter.register_unstructure_hook(datetime, _unstructure_datetime)
converter.register_unstructure_hook_func(
    lambda t: isinstance(t, type) and issubclass(t, Enum), lambda e: e.value
)
converter.register_unstructure_hook_func(
    lambda t: t is FrozenMap or getattr(t, "__origin__", None) is Mapping, thaw
)


_EXTRA_KEY: Final = "__mmws_extra__"  # not a wire name: a frame carrying it lands in extra


def _readonly(value: dict[str, Any], _: Any = None) -> Mapping[str, Any]:
    return freeze_members(value)


@attrs.frozen(slots=True)
class FieldRule:
    name: str
    wire: str
    hook: Hook


class ModelCodec:
    """Decode and encode one model class. Built once per class at import time."""

    __slots__ = (
        "_build", "_build_lazy", "_dump", "_exact", "cls", "identity", "known", "reference",
        "rules", "wire_to_rule",
    )  # fmt: skip

    def __init__(self, cls: type[Any], identity_aliases: Mapping[str, str] | None = None) -> None:
        attrs.resolve_types(cls)
        self.cls = cls
        fields = [f for f in attrs.fields(cls) if f.name != "extra"]
        self.rules = tuple(FieldRule(f.name, camel(f.name), _hook_for(f.type)) for f in fields)
        self.wire_to_rule = {r.wire: r for r in self.rules}
        # for ``old``: a value of this exact type passes as it is (no hook call)
        self._exact = {camel(f.name): _exact_type(f.type) for f in fields}
        self.known = frozenset(self.wire_to_rule)
        self.identity = dict(identity_aliases or {})
        overrides: dict[str, Any] = {
            r.name: override(rename=r.wire, struct_hook=r.hook) for r in self.rules
        }
        # cattrs passes ``Enum | str`` unions through untouched; write the plain value.
        dump_overrides: dict[str, Any] = {
            f.name: override(rename=camel(f.name), unstruct_hook=_enum_value)
            if _is_enum_field(f.type)
            else override(rename=camel(f.name))
            for f in fields
        }
        # cattrs' own structure function: the reference the generated one is tested against
        self.reference = make_dict_structure_fn(
            cls, converter, extra=override(rename=_EXTRA_KEY, struct_hook=_readonly), **overrides
        )
        self._build = _make_structure(cls, fields)
        self._build_lazy = _make_structure(cls, fields, lazy=True)
        self._dump = make_dict_unstructure_fn(
            cls,
            converter,
            _cattrs_omit_if_default=True,
            extra=override(omit=True),
            **dump_overrides,
        )
        converter.register_structure_hook(cls, self.structure)
        converter.register_unstructure_hook(cls, self.unstructure)

    def structure(self, data: Mapping[str, Any], _: Any = None, *, lazy: bool = False) -> Any:
        """Wire mapping -> model; ``TypeError``, ``ValueError`` or ``KeyError`` names the key.
        ``lazy``: free-form objects are frozen on first read (see :func:`_make_structure`:
        only for a frame whose nesting was checked)."""
        if not self.known.issuperset(data):  # rare: unknown keys, or the old ``id`` alias
            data = self._rewrite(data)
        try:
            return self._build_lazy(data) if lazy else self._build(data)
        except KeyError as exc:
            raise KeyError(f"required field {exc.args[0]!r} is missing") from None
        except (TypeError, ValueError) as exc:
            raise self._explain(data, exc) from None

    def _rewrite(self, data: Mapping[str, Any]) -> Mapping[str, Any]:
        data = dict(data)
        for wire, alias in self.identity.items():
            if wire not in data and alias in data:
                data[wire] = data.pop(alias)
        extras = {k: data.pop(k) for k in data.keys() - self.known}  # frozen as extra
        if extras:
            data[_EXTRA_KEY] = extras
        return data

    def structure_old(self, data: Mapping[str, Any]) -> Mapping[str, Any]:
        """The ``old`` object: previous values of the changed fields, snake_case, typed."""
        out: dict[str, Any] = {}
        rules, exact = self.wire_to_rule, self._exact
        for wire, value in data.items():
            rule = rules.get(wire)
            if rule is None:
                out[wire] = freeze(value)
            elif type(value) is exact[wire]:
                out[rule.name] = value
            else:
                try:
                    out[rule.name] = rule.hook(value, None)
                except (TypeError, ValueError) as exc:
                    raise type(exc)(f"field {wire!r} of 'old': {exc}") from None
        return FrozenMap(out)

    def unstructure(self, model: Any) -> dict[str, Any]:
        """Model -> wire mapping; ``None`` attributes are left out, ``extra`` merged back."""
        out: dict[str, Any] = self._dump(model)
        if model.extra:
            out.update(thaw(model.extra))
        return out

    def _explain(self, data: Mapping[str, Any], exc: Exception) -> Exception:
        for rule in self.rules:
            if rule.wire in data:
                try:
                    rule.hook(data[rule.wire], None)
                except (TypeError, ValueError) as inner:
                    return type(inner)(f"field {rule.wire!r}: {inner}")
        return exc


def _make_structure(
    cls: type[Any], fields: list[Any], lazy: bool = False
) -> Callable[[Mapping[str, Any]], Any]:
    """A function ``build(data)``: wire mapping -> instance of ``cls``, applying the same
    rules (and raising the same errors) as the field hooks, generated per model.

    The common case of each field is inlined (a value of the exact type passes, a known enum
    value is one dict lookup); anything else goes to the field's hook, which converts it or
    raises. The instance is built with ``object.__new__`` and its slots filled directly: the
    frozen class's ``__init__`` pays for a keyword call and a guarded ``__setattr__`` per
    field. The instance is as frozen as any other. Every value is checked before the
    instance is made, so no half-made instance (whose ``repr`` would fail) is ever in a
    traceback's locals. ``extra`` is read from a key no wire frame can carry
    (:meth:`ModelCodec.structure` moves unknown keys there).

    ``lazy``: free-form objects (``extra`` and the mapping fields) become
    :class:`~mmws._frozen.LazyFrozenMap`, whose values are frozen as they are read: only for
    a frame whose nesting was checked first (:func:`~mmws._frozen.within_depth`), so that
    the freezing can never fail later."""
    namespace: dict[str, Any] = {
        "cls": cls, "new": object.__new__, "freeze_members": freeze_members, "Lazy": LazyFrozenMap,
        "set_extra": cls.__dict__["extra"].__set__,
        "EMPTY": attrs.fields_dict(cls)["extra"].default,
        "known_timestamp": _TIMESTAMPS.get,
    }  # fmt: skip
    lines = ["def build(d):", "    get = d.get"]
    sets = ["    o = new(cls)"]
    for index, field in enumerate(fields):
        name, wire = field.name, camel(field.name)
        first, optional = _members(field.type)
        namespace[f"h{index}"] = _hook_for(field.type)
        namespace[f"s{index}"] = cls.__dict__[name].__set__
        lines.append(f"    v = get({wire!r})" if optional else f"    v = d[{wire!r}]")
        sets.append(f"    s{index}(o, v{index})")
        guard = "v is not None and " if optional else ""
        if isinstance(first, type) and issubclass(first, Enum):
            lookup: dict[str, Any] = {}
            for member in first:
                lookup[member.value.lower()] = member
                lookup[member.value.upper()] = member
                lookup[member.value] = member
            namespace[f"e{index}"] = lookup
            lines.append("    if type(v) is str:")
            lines.append(f"        v = e{index}.get(v, v)")
            lines.append(f"    elif {guard}True:" if optional else "    else:")
            lines.append(f"        v = h{index}(v)")
        elif first is datetime:  # most timestamps were seen lately: one dict lookup
            lines.append(f"    if {guard}True:" if optional else "    if True:")
            lines.append("        w = known_timestamp(v) if type(v) is str else None")
            lines.append(f"        v = w if w is not None else h{index}(v)")
        elif lazy and _is_mapping(first):
            lines.append("    if type(v) is dict:")
            lines.append("        v = Lazy(v)")
            lines.append(f"    elif {guard}True:" if optional else "    else:")
            lines.append(f"        v = h{index}(v)")
        elif first in (int, float, bool, str):
            namespace[f"t{index}"] = first
            lines.append(f"    if {guard}type(v) is not t{index}:")
            lines.append(f"        v = h{index}(v)")
        else:
            lines.append(f"    if {guard}True:" if optional else "    if True:")
            lines.append(f"        v = h{index}(v)")
        lines.append(f"    v{index} = v")
    lines.append(f"    v = get({_EXTRA_KEY!r})")
    lines.append(
        "    v = EMPTY if v is None else "
        + ("Lazy(v)" if lazy else "freeze_members(v)")
    )
    lines.extend(sets)
    lines.append("    set_extra(o, v)")
    lines.append("    return o")
    source = "\n".join(lines) + "\n"
    exec(compile(source, f"<mmws structure {cls.__name__}>", "exec"), namespace)
    build: Callable[[Mapping[str, Any]], Any] = namespace["build"]
    return build


def slot_constructor(cls: type[T]) -> Callable[..., T]:
    """A function taking every attribute of the frozen slotted attrs class ``cls``
    positionally, in field order, that builds an instance with ``object.__new__`` and fills
    its slots directly (a third of the cost of the generated ``__init__``). No defaults, no
    converters, no validators: for the hot path, where the values are known to be right."""
    if not attrs.has(cls) or "__slots__" not in cls.__dict__:
        raise TypeError(f"{cls.__name__} is not a slotted attrs class")
    fields: tuple[Any, ...] = attrs.fields(cls)
    namespace: dict[str, Any] = {"cls": cls, "new": object.__new__}
    names = [f"a{i}" for i in range(len(fields))]
    lines = [f"def make({', '.join(names)}):", "    o = new(cls)"]
    for index, field in enumerate(fields):
        owner = next(k for k in cls.__mro__ if field.name in k.__dict__)
        namespace[f"s{index}"] = owner.__dict__[field.name].__set__
        lines.append(f"    s{index}(o, a{index})")
    lines.append("    return o")
    exec(compile("\n".join(lines) + "\n", f"<mmws make {cls.__name__}>", "exec"), namespace)
    make: Callable[..., T] = namespace["make"]
    return make


_codecs: dict[type[Any], ModelCodec] = {}


def model_codec(cls: type[Any], identity_aliases: Mapping[str, str] | None = None) -> ModelCodec:
    """The codec of ``cls``, built on first use and kept."""
    codec = _codecs.get(cls)
    if codec is None:
        codec = _codecs[cls] = ModelCodec(cls, identity_aliases)
    return codec


def preview(text: str | bytes) -> str:
    """The start of a frame, as text, for error messages and bug reports."""
    if isinstance(text, bytes):
        return text[:200].decode("utf-8", "replace")
    return text[:200]


def _loads_stdlib(text: str | bytes) -> Any:
    # bytes.decode validates UTF-8 in C; json.loads(bytes) would first run its Python
    # encoding sniffer on every frame.
    return json.loads(text.decode("utf-8") if type(text) is bytes else text)


# orjson turns an integer beyond 64 bits into a float where json keeps it exact: a frame
# with a run of 19 digits (no 64-bit integer is longer than that without one) goes to json.
# (Every digit becomes "0" and everything else " ", then one substring search: a fifth of
# what a regular expression takes.) So does whatever orjson refuses (NaN, 1e400, a lone
# surrogate, bad UTF-8, too deep): json then decodes it, or refuses it, as it always did.
_DIGITS_AS_ZEROS: Final = bytes(48 if 48 <= i <= 57 else 32 for i in range(256))
_LONG_RUN: Final = b"0" * 19


def _make_orjson_loads() -> Callable[[str | bytes], Any] | None:
    try:
        import orjson
    except ImportError:
        return None
    fast, table, run = orjson.loads, _DIGITS_AS_ZEROS, _LONG_RUN

    def loads_orjson(text: str | bytes) -> Any:
        raw = text.encode("utf-8", "surrogatepass") if type(text) is str else text
        if run not in raw.translate(table):
            try:
                return fast(text)
            except ValueError:  # orjson.JSONDecodeError
                pass
        return _loads_stdlib(text)

    return loads_orjson


_loads_orjson = _make_orjson_loads()
JSON_BACKEND: Final = (
    "orjson" if _loads_orjson is not None and os.environ.get("MMWS_JSON") != "stdlib"
    else "json"
)  # fmt: skip
"""Which parser decodes frames: ``orjson`` when it is installed (``pip install
"mmws[fast]"``; the environment variable ``MMWS_JSON=stdlib`` turns it off), else the
standard library's ``json``. Both accept the same frames and give the same values."""
_loads: Callable[[str | bytes], Any] = (
    _loads_orjson if JSON_BACKEND == "orjson" and _loads_orjson is not None else _loads_stdlib
)


def load_object(text: str | bytes) -> dict[str, Any]:
    """Parse one frame into a JSON object, or raise ``RemoteProtocolError`` saying why.

    Invalid UTF-8 is a ``RemoteProtocolError`` like any other undecodable frame."""
    try:
        msg = _loads(text)
    except (ValueError, RecursionError) as exc:
        raise RemoteProtocolError(f"frame is not valid JSON: {exc}", preview(text)) from None
    if type(msg) is not dict:
        raise RemoteProtocolError(
            f"frame is a JSON {type(msg).__name__}, not an object", preview(text)
        )
    return msg


UNDECODABLE: Final = (
    RecursionError,
    OverflowError,
    ValueError,
    TypeError,
    KeyError,
    IndexError,
    AttributeError,
)
"""What a frame the cores did not foresee can raise while being decoded. A protocol core
turns each into :class:`RemoteProtocolError` (see :func:`undecodable`): no frame, however
hostile, may escape a core as anything else and kill the thread that reads."""


def undecodable(exc: BaseException, text: str | bytes) -> RemoteProtocolError:
    """The ``RemoteProtocolError`` for a frame whose decoding raised ``exc``."""
    detail = str(exc)[:200] if not isinstance(exc, RecursionError) else "nested too deeply"
    return RemoteProtocolError(
        f"frame could not be decoded ({type(exc).__name__}: {detail})", preview(text)
    )
