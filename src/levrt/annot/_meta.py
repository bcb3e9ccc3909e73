"""`annot.meta`: the decorator that annotates modes and workflows, and the `__lev__` builder."""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence
from types import CodeType, ModuleType
from typing import Any, TypeVar, cast, overload

from ._manifest import export_kind, manifest_entry
from ._model import JSON, Meta, Param, describe, to_json
from .cats import Attck, BlackArch, parse_category

__all__ = ["MANIFEST_VERSION", "check_keys", "declared_keys", "meta", "normalize_cats"]

# Bumped when the shape of the manifest changes in a way readers must know about.
MANIFEST_VERSION = 1

F = TypeVar("F", bound=Callable[..., Any])

_CATS_EXPECTED = (
    "an Attck or BlackArch member, a list of them, or a dict {Attck: [...], BlackArch: [...]}"
)
_COLLECTIONS = (list, tuple, set, frozenset)


@overload
def meta(
    exports: Sequence[ModuleType | Callable[..., Any]],
    desc: str | None = None,
    params: Sequence[Param] | None = None,
    cats: object = None,
    tags: Sequence[str] | None = None,
    ext: dict[str, JSON] | None = None,
    keys: Sequence[str] | None = None,
) -> dict[str, Any]: ...


@overload
def meta(
    exports: None = None,
    desc: str | None = None,
    params: Sequence[Param] | None = None,
    cats: object = None,
    tags: Sequence[str] | None = None,
    ext: dict[str, JSON] | None = None,
    keys: Sequence[str] | None = None,
) -> Callable[[F], F]: ...


def meta(
    exports: Sequence[ModuleType | Callable[..., Any]] | None = None,
    desc: str | None = None,
    params: Sequence[Param] | None = None,
    cats: object = None,
    tags: Sequence[str] | None = None,
    ext: dict[str, JSON] | None = None,
    keys: Sequence[str] | None = None,
) -> dict[str, Any] | Callable[[F], F]:
    """Annotate a tool mode or workflow, or build a module's `__lev__` manifest.

    ``@annot.meta(desc=..., params=[...], cats=[...], tags=[...], ext={...})`` attaches a
    `Meta` to the decorated function (as ``__lev_meta__``) and returns the function itself.

    ``__lev__ = annot.meta([...], desc=..., cats=..., tags=..., ext=...)`` returns the
    manifest dict ``{"levrt": 1, "exports": [entry, ...], "desc", "cats", "tags", "ext"}``.
    In a package's ``__init__`` the list holds tool modules, tool functions and workflows
    and the keywords describe the package; in a tool module the list holds its modes, in
    order, ``desc`` is the tool's display name and ``cats``/``tags`` are the tool's.
    ``params`` given with a list are kept in the manifest as written (they describe no
    function there; ``lev check`` warns). ``keys`` (*ours*) names the columns that identify
    a row of a tool's results across jobs (``["host", "port"]``, see :mod:`levrt.rows`): the
    ``Cr`` the decorated function builds stores them with its run. Raises
    TypeError/ValueError naming the argument at fault.
    """
    if exports is not None:
        manifest = _build_manifest(exports)
        manifest.update(
            desc=_check_desc(desc),
            params=[param.to_dict() for param in _check_params(params)],
            cats=normalize_cats(cats),
            tags=_check_tags(tags),
            ext=_check_ext(ext),
        )
        if keys is not None:
            raise TypeError("annot.meta: keys describe one tool's rows; give them to "
                            "@annot.meta(...) on the mode or to its Cr, not with an export list")
        return manifest

    annotation = Meta(
        desc=_check_desc(desc),
        params=_check_params(params),
        cats=normalize_cats(cats),
        tags=_check_tags(tags),
        ext=_check_ext(ext),
        keys=check_keys(keys, "annot.meta"),
    )

    def attach(fn: F) -> F:
        if not inspect.isfunction(fn):
            raise TypeError(
                f"@annot.meta(...) decorates a function (def or async def), got {describe(fn)}"
            )
        # The function itself is returned, not a wrapper: it must stay picklable and
        # inspect.getsource must still find its code (the manifest reads Cr(...) calls).
        fn.__lev_meta__ = annotation  # type: ignore[attr-defined]
        if annotation.keys:
            _KEYS_BY_CODE[fn.__code__] = annotation.keys
        return fn

    return attach


# The keys of each decorated function, by its code: a Cr built in that function finds them
# from its caller's frame (the function is returned unwrapped, so nothing else is called).
_KEYS_BY_CODE: dict[CodeType, list[str]] = {}


def declared_keys(code: CodeType) -> list[str] | None:
    """The ``keys`` that ``@annot.meta`` gave the function whose code is ``code``, if any."""
    return _KEYS_BY_CODE.get(code)


def check_keys(keys: object, where: str) -> list[str]:
    """``keys`` as a list of distinct non-empty str; TypeError/ValueError naming ``where``."""
    if keys is None:
        return []
    if isinstance(keys, str) or not isinstance(keys, _COLLECTIONS):
        raise TypeError(f"{where}: keys must be a list of column names, got {describe(keys)}")
    for position, key in enumerate(keys):
        if not isinstance(key, str) or not key:
            raise TypeError(
                f"{where}: keys[{position}] must be a column name (a non-empty str), "
                f"got {describe(key)}")
    if len(set(keys)) != len(keys):
        raise ValueError(f"{where}: keys name a column twice: {list(keys)!r}")
    return list(keys)


def _build_manifest(exports: object) -> dict[str, Any]:
    if export_kind(exports) is not None:
        raise TypeError(
            f"annot.meta(exports) expects a list, got {describe(exports)}; to annotate a "
            "function write @annot.meta(...) with parentheses, to export it write "
            "annot.meta([...])"
        )
    if not isinstance(exports, (list, tuple)):
        raise TypeError(
            f"annot.meta(exports) expects a list of modules and functions, got {describe(exports)}"
        )
    entries = []
    for position, item in enumerate(exports):
        if export_kind(item) is None:
            raise TypeError(
                f"annot.meta(exports): item {position} is {describe(item)}; expected a module "
                "(multi-mode tool), a sync function (single-mode tool) or an async function "
                "(workflow)"
            )
        entries.append(manifest_entry(item))
    return {"levrt": MANIFEST_VERSION, "exports": entries}


def _check_desc(desc: object) -> str | None:
    if desc is not None and not isinstance(desc, str):
        raise TypeError(f"annot.meta: desc must be a str, got {describe(desc)}")
    return desc


def _check_params(params: object) -> list[Param]:
    if params is None:
        return []
    if not isinstance(params, (list, tuple)):
        raise TypeError(f"annot.meta: params must be a list of annot.Param, got {describe(params)}")
    seen: set[str] = set()
    for position, param in enumerate(params):
        if not isinstance(param, Param):
            raise TypeError(
                f"annot.meta: params[{position}] must be an annot.Param, got {describe(param)}"
            )
        if param.name in seen:
            raise ValueError(
                f"annot.meta: params name {param.name!r} twice; give each parameter one Param"
            )
        seen.add(param.name)
    return list(params)


def _check_tags(tags: object) -> list[str]:
    if tags is None:
        return []
    if isinstance(tags, str) or not isinstance(tags, _COLLECTIONS):
        raise TypeError(f"annot.meta: tags must be a list of str, got {describe(tags)}")
    for position, tag in enumerate(tags):
        if not isinstance(tag, str):
            raise TypeError(f"annot.meta: tags[{position}] must be a str, got {describe(tag)}")
    # Order is the author's; duplicates would only show up twice in search facets.
    return list(dict.fromkeys(tags))


def _check_ext(ext: object) -> dict[str, JSON]:
    if ext is None:
        return {}
    if not isinstance(ext, dict):
        raise TypeError(f"annot.meta: ext must be a dict, got {describe(ext)}")
    return cast(dict[str, JSON], to_json(ext, "annot.meta: ext"))


def normalize_cats(cats: object) -> dict[str, list[str]]:
    """Turn the `cats` argument of `annot.meta` into ``{"attck": [...], "blackarch": [...]}``."""
    found: dict[type[Attck] | type[BlackArch], set[str]] = {Attck: set(), BlackArch: set()}
    if cats is None:
        pass
    elif isinstance(cats, (Attck, BlackArch)):
        found[type(cats)].add(cats.value)
    elif isinstance(cats, _COLLECTIONS):
        for position, item in enumerate(cats):
            if not isinstance(item, (Attck, BlackArch)):
                raise ValueError(
                    f"annot.meta: cats[{position}] must be an Attck or BlackArch member, "
                    f"got {describe(item)}{_member_hint(item)}"
                )
            found[type(item)].add(item.value)
    elif isinstance(cats, dict):
        for key, members in cats.items():
            if key is not Attck and key is not BlackArch:
                raise ValueError(
                    f"annot.meta: cats dict keys must be the classes Attck or BlackArch, "
                    f"got {describe(key)}"
                )
            items = [members] if isinstance(members, key) else members
            if not isinstance(items, _COLLECTIONS):
                raise ValueError(
                    f"annot.meta: cats[{key.__name__}] must be a list of {key.__name__} members, "
                    f"got {describe(members)}"
                )
            for item in items:
                if not isinstance(item, key):
                    raise ValueError(
                        f"annot.meta: cats[{key.__name__}] must hold only {key.__name__} "
                        f"members, got {describe(item)}{_member_hint(item)}"
                    )
                found[key].add(item.value)
    else:
        raise ValueError(
            f"annot.meta: cats must be {_CATS_EXPECTED}, got {describe(cats)}{_member_hint(cats)}"
        )
    named = (("attck", found[Attck]), ("blackarch", found[BlackArch]))
    return {name: sorted(values) for name, values in named if values}


def _member_hint(value: object) -> str:
    # A category written as text is the most common slip; point at the member to write.
    if isinstance(value, (Attck, BlackArch)):
        return f" (it belongs under {type(value).__name__})"
    if not isinstance(value, str):
        return ""
    try:
        member = parse_category(value)
    except ValueError:
        return ""
    return f" (write {type(member).__name__}.{member.name})"
