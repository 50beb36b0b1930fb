"""The method registry: every fusion method is registered once as a frozen :class:`MethodSpec`.

Everything user-facing (CLI subcommands and options, QGIS algorithms, benchmark tables, the contract
test) is generated from here.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

from .errors import ParameterError, UnknownMethodError

_TYPES = {"float": float, "int": int, "bool": bool, "str": str}


@dataclass(frozen=True)
class Parameter:
    """A typed method parameter.

    Parameters
    ----------
    name : str
        Python identifier (CLI: ``--name-with-dashes``).
    type : {"float", "int", "bool", "str"}
    default : Any
    doc : str
        One line for help texts.
    min, max : float, optional
        Inclusive range for numbers.
    choices : tuple, optional
        Allowed values for strings.
    """

    name: str
    type: str
    default: Any
    doc: str
    min: float | None = None
    max: float | None = None
    choices: tuple[Any, ...] | None = None

    def validate(self, value: Any, method: str) -> Any:
        py = _TYPES[self.type]
        if self.type == "bool" and isinstance(value, str):
            low = value.strip().lower()
            if low in ("1", "true", "yes", "on"):
                value = True
            elif low in ("0", "false", "no", "off"):
                value = False
        try:
            if self.type == "bool" and not isinstance(value, bool):
                raise TypeError
            if self.type == "int" and isinstance(value, float) and not float(value).is_integer():
                raise TypeError
            if self.type in ("int", "float") and isinstance(value, bool):
                raise TypeError
            v = py(value)
        except (TypeError, ValueError):
            raise ParameterError(f"Parameter {self.name!r} of method {method!r} has the wrong type",
                                 expected=f"{self.type} ({self.doc})", got=f"{value!r}",
                                 fix=f"pass {self.name}={self.default!r} or another {self.type}") from None
        if self.min is not None and v < self.min or self.max is not None and v > self.max:
            raise ParameterError(f"Parameter {self.name!r} of method {method!r} is out of range",
                                 expected=f"{self.min if self.min is not None else '-inf'} <= {self.name} <= "
                                          f"{self.max if self.max is not None else 'inf'}",
                                 got=f"{v!r}", fix=f"use a value in range, e.g. the default {self.default!r}")
        if self.choices is not None and v not in self.choices:
            raise ParameterError(f"Parameter {self.name!r} of method {method!r} has no such choice",
                                 expected=f"one of {', '.join(map(repr, self.choices))}", got=f"{v!r}",
                                 fix=f"pick one of the listed values (default {self.default!r})")
        return v


@dataclass(frozen=True)
class MethodSpec:
    """A registered fusion method (the operator contract of DESIGN.md).

    Attributes
    ----------
    name : str
        Literature short name, lowercase (``gsa``, ``mtf_glp_hpm``).
    title : str
        Human-readable name.
    family : str
        ``CS``, ``MRA``, ``VO``, ``ML``, ``HS``, ``baseline``...
    scenario : str
        ``pansharpening``, ``hyperspectral``, ...
    inputs : tuple of str
        Input roles, e.g. ``("ms", "pan")``.
    parameters : tuple of Parameter
    references : tuple of str
        DOIs.
    summary : str
        The equation in words, and when to choose the method (help texts).
    estimate : callable or None
        ``estimate(ctx, params) -> dict[str, dask.array.Array]``: global statistics as lazy reductions,
        computed once. ``ctx`` is a :class:`geofuse.engine.EstimateContext`.
    apply : callable
        ``apply(block, est, params) -> torch.Tensor``: one chunk with halo. ``block`` is a
        :class:`geofuse.engine.Block`; ``est`` holds the estimate's arrays as torch tensors.
    halo : callable
        ``halo(params, ratio) -> int``: receptive field in high-resolution pixels, derived from the
        method's filters.
    exact_chunking : bool
        True when the math is local, so the chunked result equals the whole-image result.
    seam_tolerance : float
        For ``exact_chunking=False`` methods (iterative solvers run per chunk with overlap): the stated
        seam bound, the largest allowed ``max|chunked - whole| / (max(whole) - min(whole))`` on the
        contract test's scenes. ``0.0`` (default) means exact.

    Hyperspectral methods
    ---------------------
    ``scenario="hyperspectral"``, ``inputs=("hs", "msi")``, family ``"HS"``. The engine passes the MSI
    (K >= 1 bands; a PAN is K = 1) as ``block.pan`` / ``ctx.pan`` and the HS (B bands) as
    ``block.ms_lr`` / ``ctx.ms_lr``; ``apply`` returns B bands on the MSI grid. ``estimate`` computes
    every global quantity (SRF ``ctx.srf`` (K, B): the user's or estimated by least squares, see
    :func:`geofuse.engine.estimate_srf`; subspaces, endmembers, dictionaries) once, from lazy global
    reductions or small delayed solves, and returns them in its dict, so ``apply`` gets them as
    tensors. Parameters named in ``parameters`` reach both as ``params``. The API entry point is
    :func:`geofuse.fuse_hyperspectral`.
    """

    name: str
    title: str
    family: str
    scenario: str
    inputs: tuple[str, ...]
    parameters: tuple[Parameter, ...]
    references: tuple[str, ...]
    summary: str
    apply: Callable[..., Any]
    halo: Callable[[Mapping[str, Any], int], int]
    estimate: Callable[..., Mapping[str, Any]] | None = None
    exact_chunking: bool = True
    seam_tolerance: float = 0.0
    tags: tuple[str, ...] = field(default_factory=tuple)

    def resolve(self, params: Mapping[str, Any] | None) -> dict[str, Any]:
        """Fill defaults and validate user parameters; unknown names raise :class:`ParameterError`."""
        params = dict(params or {})
        known = {p.name: p for p in self.parameters}
        unknown = [k for k in params if k not in known]
        if unknown:
            raise ParameterError(f"Method {self.name!r} has no parameter {unknown[0]!r}",
                                 expected=f"one of: {', '.join(known) or '(no parameters)'}", got=repr(unknown[0]),
                                 fix=f"see `geofuse methods {self.name}`")
        return {n: (p.validate(params[n], self.name) if n in params else p.default) for n, p in known.items()}


_REGISTRY: dict[str, MethodSpec] = {}


def register(spec: MethodSpec) -> MethodSpec:
    """Register ``spec``; names are unique and lowercase."""
    if spec.name != spec.name.lower() or not spec.name.isidentifier():
        raise ValueError(f"method names are lowercase identifiers, got {spec.name!r}")
    if spec.name in _REGISTRY:
        raise ValueError(f"method {spec.name!r} is registered twice")
    _REGISTRY[spec.name] = spec
    return spec


def _load() -> None:
    from . import methods  # noqa: F401  (registers the built-in methods)


def get(name: str) -> MethodSpec:
    """The spec of method ``name``; unknown names list the available ones."""
    _load()
    key = str(name).strip().lower().replace("-", "_")
    if key not in _REGISTRY:
        close = difflib.get_close_matches(key, list(_REGISTRY), n=3)
        raise UnknownMethodError(f"Unknown fusion method {name!r}",
                                 expected="one of: " + ", ".join(sorted(_REGISTRY)), got=repr(name),
                                 fix=(f"did you mean {' or '.join(map(repr, close))}? " if close else "")
                                 + "run `geofuse methods` to list them")
    return _REGISTRY[key]


def available(scenario: str | None = None, family: str | None = None) -> list[MethodSpec]:
    """Registered specs, optionally filtered, in registration order."""
    _load()
    return [s for s in _REGISTRY.values() if (scenario is None or s.scenario == scenario)
            and (family is None or s.family == family)]
