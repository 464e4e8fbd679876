"""One registry shape for every ingredient (positives, views, heads, objectives, weightings), and the option
specs that declare each ingredient's options once, next to the ingredient.

    HEADS = Registry("head", base=Head, reserved=("in_dim", "cfg"))
    @HEADS.register("mlp")
    class MLPProjector(Head):
        options = {"num_layers": Opt(int, 1, 16), "last_bn": Opt(bool)}
        def __init__(self, in_dim, cfg, num_layers=2, last_bn=False): ...
    HEADS.check_options("mlp", {"num_layers": 0})     # ConfigError: head 'mlp': num_layers must be an integer in [1, 16], got 0

:meth:`Registry.check_options` checks option **names** against the constructor's signature and option **values**
against the ingredient's ``options`` specs (:class:`Opt`: type, range, choices), then calls the ingredient's
``validate_options(options, owner)`` class method (if any) with the defaults filled in, for rules that tie
options together (e.g. multi-crop must make at least 2 views). Every failure is one
:class:`~gpsviz.errors.ConfigError` line that names the ingredient, the option and what is allowed. An
ingredient defined in ``gpsviz`` cannot be registered without a spec for every option.
"""
from __future__ import annotations

import inspect
import math
import numbers
import os
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import numpy as np
import torch

from gpsviz.errors import ConfigError
from gpsviz.utils import parse_device

__all__ = ["Registry", "Opt", "accepted_options", "option_defaults", "check_values", "missing_specs"]

_TRUE = ("true", "yes", "on", "1")
_FALSE = ("false", "no", "off", "0")


def _num(x: float) -> str:
    return str(int(x)) if float(x).is_integer() and abs(x) < 1e15 else f"{x:g}"


@dataclass(frozen=True)
class Opt:
    """The type and allowed values of one ingredient option.

    ``kind``: ``int``, ``float`` (finite; an int is accepted), ``bool``, ``str`` (with ``choices``), ``dict``, or
    one of the tags ``"pair"`` (two numbers ``(low, high)`` in ``[lo, hi]`` with low < high; list or tuple),
    ``"names"`` (a non-empty list of names from ``choices``), ``"path"`` (a string or ``os.PathLike``),
    ``"array"`` (a tensor, array or list) and ``"device"`` (``auto``, ``cpu``, ``cuda``, ``cuda:N``, ``mps``).
    ``lo``/``hi`` bound numbers (``lo_open``/``hi_open`` exclude the bound); ``many``: an int option that also
    takes a non-empty list of such ints; ``optional``: ``None`` is allowed; ``also``: further literal values
    allowed (e.g. ``"adaptive"``); ``choices``: a tuple or a function returning one (evaluated when checking);
    ``rule``: ``value → reason or None`` for a constraint the fields cannot say; ``note``: a hint appended to
    the message. Never ``bool`` for a number: ``True`` is not 1 here. Booleans take ``True``/``False`` and the
    words true/false/yes/no/on/off/1/0 (the CLI passes ``last_bn=false`` as a string), normalised to a bool.
    """

    kind: Any
    lo: float | None = None
    hi: float | None = None
    lo_open: bool = False
    hi_open: bool = False
    optional: bool = False
    also: tuple = ()
    choices: tuple | Callable[[], Sequence[str]] | None = None
    many: bool = False
    rule: Callable[[Any], str | None] | None = None
    note: str = ""

    # ------------------------------------------------------------------ description
    def _choices(self) -> list[str]:
        c = self.choices() if callable(self.choices) else self.choices
        return list(c or ())

    def _range(self) -> str:
        if self.lo is None and self.hi is None:
            return ""
        lo = "-inf" if self.lo is None else _num(self.lo)
        hi = "inf" if self.hi is None else _num(self.hi)
        return f"{'(' if self.lo_open or self.lo is None else '['}{lo}, {hi}{')' if self.hi_open or self.hi is None else ']'}"

    def describe(self) -> str:
        """What the option accepts, as the end of a sentence ("... must be <this>")."""
        k, r = self.kind, self._range()
        if k is int:
            s = f"an integer in {r}" if r else "an integer"
            if self.many:
                s += " or a list of such integers"
        elif k is float:
            s = f"a finite number in {r}" if r else "a finite number"
        elif k is bool:
            s = "true or false"
        elif k is str:
            s = "one of " + ", ".join(map(repr, self._choices())) if self.choices is not None else "a string"
        elif k is dict:
            s = "a dict of options"
        elif k == "pair":
            s = f"a pair (low, high) of numbers in {r} with low < high"
        elif k == "names":
            s = "a non-empty list of names from " + ", ".join(self._choices())
        elif k == "path":
            s = "a path (a string)"
        elif k == "array":
            s = "a tensor or an array"
        elif k == "device":
            s = "a device: auto, cpu, cuda, cuda:N or mps"
        else:  # pragma: no cover - a spec bug
            raise TypeError(f"Opt: unknown kind {k!r}")
        for a in self.also:
            s += f" or {a!r}"
        if self.optional:
            s += " or None"
        return s + (f" ({self.note})" if self.note else "")

    # ------------------------------------------------------------------ checking
    def _in_range(self, v: float) -> bool:
        if self.lo is not None and (v <= self.lo if self.lo_open else v < self.lo):
            return False
        if self.hi is not None and (v >= self.hi if self.hi_open else v > self.hi):
            return False
        return True

    def _number(self, v: Any, integer: bool) -> bool:
        if isinstance(v, bool):
            return False
        if integer:
            return isinstance(v, numbers.Integral) and self._in_range(int(v))
        return isinstance(v, numbers.Real) and math.isfinite(float(v)) and self._in_range(float(v))

    def normalise(self, v: Any) -> tuple[bool, Any]:
        """(whether ``v`` is allowed, its normal form: a bool for bool options, plain int/float numbers)."""
        if v is None and self.optional:
            return True, None
        if isinstance(v, str) and v in self.also:
            return True, v
        k = self.kind
        if k is int:
            if self.many and isinstance(v, (list, tuple)):
                ok = len(v) > 0 and all(self._number(x, True) for x in v)
                return ok, tuple(int(x) for x in v) if ok else v
            return self._number(v, True), (int(v) if self._number(v, True) else v)
        if k is float:
            return self._number(v, False), (float(v) if self._number(v, False) else v)
        if k is bool:
            if isinstance(v, bool):
                return True, v
            if isinstance(v, numbers.Integral) and v in (0, 1):
                return True, bool(v)
            if isinstance(v, str) and v.strip().lower() in _TRUE + _FALSE:
                return True, v.strip().lower() in _TRUE
            return False, v
        if k is str:
            return isinstance(v, str) and (self.choices is None or v in self._choices()), v
        if k is dict:
            return isinstance(v, dict), v
        if k == "pair":
            ok = (isinstance(v, (list, tuple)) and len(v) == 2 and all(self._number(x, False) for x in v)
                  and float(v[0]) < float(v[1]))
            return ok, (float(v[0]), float(v[1])) if ok else v
        if k == "names":
            ok = (isinstance(v, (list, tuple)) and len(v) > 0
                  and all(isinstance(x, str) and x in self._choices() for x in v))
            return ok, tuple(v) if ok else v
        if k == "path":
            return (isinstance(v, os.PathLike) or (isinstance(v, str) and v.strip() != "")), v
        if k == "array":
            return isinstance(v, (torch.Tensor, np.ndarray, list, tuple)), v
        if k == "device":
            if not isinstance(v, str):
                return False, v
            if v.strip() == "auto":
                return True, v

            try:
                parse_device(v)
            except ConfigError:
                return False, v
            return True, v
        raise TypeError(f"Opt: unknown kind {k!r}")  # pragma: no cover - a spec bug

    def check(self, owner: str, name: str, value: Any) -> Any:
        """``value`` in its normal form, or ConfigError ``"<owner>: <name> must be <what>, got <value>"``."""
        ok, v = self.normalise(value)
        reason = self.rule(v) if ok and self.rule is not None and v is not None and v not in self.also else None
        if ok and reason is None:
            return v
        hint = ""
        if isinstance(value, bool) and self.kind in (int, float, "pair"):
            hint = " (a boolean is not a number)"
        elif isinstance(value, str) and self.kind in (int, float):
            hint = " (a string, not a number)"
        what = reason or f"{self.describe()}"
        raise ConfigError(f"{owner}: {name} must be {what}, got {value!r}{hint}")


# --------------------------------------------------------------------------------------------- signatures

def accepted_options(factory: Callable, reserved: Sequence[str] = ()) -> tuple[list[str], bool]:
    """(named keyword options of ``factory`` without ``reserved``, whether it also takes ``**kwargs``).

    A class without its own constructor anywhere in its bases (``object.__init__``) takes no options."""
    if isinstance(factory, type) and factory.__init__ is object.__init__:
        return [], False
    target = factory.__init__ if isinstance(factory, type) else factory
    params = inspect.signature(target).parameters
    accepts_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
    named = [n for n, p in params.items() if n != "self" and n not in reserved and p.kind not in
             (inspect.Parameter.VAR_KEYWORD, inspect.Parameter.VAR_POSITIONAL)]
    return named, accepts_any


def option_defaults(factory: Callable, reserved: Sequence[str] = ()) -> dict[str, Any]:
    """The default values of ``factory``'s named options (options without a default are left out)."""
    named, _ = accepted_options(factory, reserved)
    if not named:
        return {}
    target = factory.__init__ if isinstance(factory, type) else factory
    params = inspect.signature(target).parameters
    return {n: params[n].default for n in named if params[n].default is not inspect.Parameter.empty}


def specs_of(factory: Any) -> dict[str, Opt]:
    """The ingredient's option specs (its ``options`` attribute; none = {})."""
    specs = getattr(factory, "options", None)
    return dict(specs) if isinstance(specs, dict) else {}


def missing_specs(factory: Callable, reserved: Sequence[str] = ()) -> list[str]:
    """Problems of ``factory``'s specs: options without an :class:`Opt`, specs for options it does not take."""
    named, _ = accepted_options(factory, reserved)
    specs = specs_of(factory)
    out = [f"option {n!r} has no spec" for n in named if not isinstance(specs.get(n), Opt)]
    out += [f"spec {n!r} names no option of it" for n in specs if n not in named]
    return out


def check_values(owner: str, factory: Any, options: dict[str, Any], reserved: Sequence[str] = ()) -> dict[str, Any]:
    """Check the values of ``options`` against ``factory``'s specs, then its ``validate_options`` (called with the
    defaults filled in and ``owner``); return the options in normal form. Options without a spec (a user's
    ingredient that declares none, or ``**kwargs`` its ``validate_options`` checks) pass unchanged.

    ``owner`` names the ingredient in messages, e.g. ``"objective 'swav'"``."""
    specs = specs_of(factory)
    out = {}
    for name, value in options.items():
        out[name] = specs[name].check(owner, name, value) if name in specs else value
    hook = getattr(factory, "validate_options", None)
    if hook is not None:
        hook({**option_defaults(factory, reserved), **out}, owner)
    return out


class Registry:
    """Name → factory (a class or a function) for one kind of ingredient.

    ``reserved``: constructor arguments the caller passes itself (a head's ``in_dim`` and ``cfg``), not options."""

    def __init__(self, kind: str, base: type | None = None, reserved: tuple[str, ...] = ()) -> None:
        self.kind = kind
        self.base = base
        self.reserved = tuple(reserved)
        self._items: dict[str, Callable] = {}

    def register(self, name: str, factory: Callable | None = None) -> Any:
        """Register ``factory`` under ``name``; usable as a call or as a decorator. Re-registering the same
        object (a module reload) is allowed; another object under a taken name raises ConfigError. An
        ingredient defined inside ``gpsviz`` must declare an :class:`Opt` for every option (``options``)."""

        def _register(f: Callable) -> Callable:
            if self.base is not None and not (isinstance(f, type) and issubclass(f, self.base)):
                raise ConfigError(f"register {self.kind} {name!r}: {f!r} is not a {self.base.__name__} subclass")
            old = self._items.get(name)
            if old is not None and (old.__module__, old.__qualname__) != (f.__module__, f.__qualname__):
                raise ConfigError(f"{self.kind} name {name!r} is already registered to {old.__qualname__}")
            if str(getattr(f, "__module__", "")).split(".")[0] == "gpsviz":
                bad = missing_specs(f, self.reserved)
                if bad:
                    raise ConfigError(f"register {self.kind} {name!r}: {'; '.join(bad)} — declare every option "
                                      "in the class attribute options = {name: Opt(...)} (gpsviz.registry.Opt)")
            self._items[name] = f
            return f

        return _register if factory is None else _register(factory)

    def names(self) -> list[str]:
        return sorted(self._items)

    def __contains__(self, name: object) -> bool:
        return name in self._items

    def get(self, name: str) -> Callable:
        if name not in self._items:
            raise ConfigError(f"unknown {self.kind} {name!r}; choose one of {', '.join(self.names())}")
        return self._items[name]

    def owner(self, name: str) -> str:
        """How messages name the ingredient: ``"<kind> '<name>'"``."""
        return f"{self.kind} {name!r}"

    def check_options(self, name: str, options: dict[str, Any], reserved: tuple[str, ...] = ()) -> dict[str, Any]:
        """Raise ConfigError when ``options`` holds a name the factory does not accept or a value its spec does
        not allow (type, range, choices, and the ingredient's own cross-option rules); return the options in
        normal form (e.g. ``"false"`` → ``False`` for a bool option)."""
        factory = self.get(name)
        reserved = tuple(reserved) + self.reserved
        if not isinstance(options, dict):
            raise ConfigError(f"{self.owner(name)}: options must be a dict, got {options!r}")
        named, accepts_any = accepted_options(factory, reserved)
        bad = sorted(set(options) - set(named), key=str)
        if bad and not named and not accepts_any:
            raise ConfigError(f"{self.owner(name)} takes no options, got {bad}")
        if bad and not accepts_any:
            raise ConfigError(f"{self.owner(name)} has no option(s) {bad}; its options are {named}")
        return check_values(self.owner(name), factory, options, reserved)

    def build(self, name: str, /, *args: Any, **options: Any) -> Any:
        """``factory(*args, **options)`` after checking the options (names and values)."""
        options = self.check_options(name, options)
        return self.get(name)(*args, **options)
