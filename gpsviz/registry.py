"""One registry shape for every ingredient (positives, views, heads, objectives, weightings).

    HEADS = Registry("head")
    @HEADS.register("mlp")
    class MLPProjector(nn.Module): ...
    HEADS.build("mlp", in_dim=256, hidden_dim=512, out_dim=128)

:meth:`Registry.build` checks the options against the constructor's signature and raises a
:class:`~gpsviz.errors.ConfigError` that lists the accepted names and options, so a typo in a recipe or on the
command line is one clear line.
"""
from __future__ import annotations

import inspect
from typing import Any, Callable

from gpsviz.errors import ConfigError

__all__ = ["Registry", "accepted_options"]


def accepted_options(factory: Callable) -> tuple[list[str], bool]:
    """(named keyword options of ``factory``, whether it also takes ``**kwargs``)."""
    target = factory.__init__ if isinstance(factory, type) else factory
    params = inspect.signature(target).parameters
    accepts_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
    named = [n for n, p in params.items() if n != "self" and p.kind not in
             (inspect.Parameter.VAR_KEYWORD, inspect.Parameter.VAR_POSITIONAL)]
    return named, accepts_any


class Registry:
    """Name → factory (a class or a function) for one kind of ingredient."""

    def __init__(self, kind: str, base: type | None = None) -> None:
        self.kind = kind
        self.base = base
        self._items: dict[str, Callable] = {}

    def register(self, name: str, factory: Callable | None = None) -> Any:
        """Register ``factory`` under ``name``; usable as a call or as a decorator. Re-registering the same
        object (a module reload) is allowed; another object under a taken name raises ConfigError."""

        def _register(f: Callable) -> Callable:
            if self.base is not None and not (isinstance(f, type) and issubclass(f, self.base)):
                raise ConfigError(f"register {self.kind} {name!r}: {f!r} is not a {self.base.__name__} subclass")
            old = self._items.get(name)
            if old is not None and (old.__module__, old.__qualname__) != (f.__module__, f.__qualname__):
                raise ConfigError(f"{self.kind} name {name!r} is already registered to {old.__qualname__}")
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

    def check_options(self, name: str, options: dict[str, Any], reserved: tuple[str, ...] = ()) -> None:
        """Raise ConfigError when ``options`` holds a name the factory does not accept."""
        named, accepts_any = accepted_options(self.get(name))
        allowed = [n for n in named if n not in reserved]
        bad = sorted(set(options) - set(allowed))
        if bad and not accepts_any:
            raise ConfigError(f"{self.kind} {name!r} has no option(s) {bad}; its options are {allowed}")

    def build(self, name: str, /, *args: Any, **options: Any) -> Any:
        """``factory(*args, **options)`` after checking the option names."""
        self.check_options(name, options)
        return self.get(name)(*args, **options)
