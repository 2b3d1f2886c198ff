"""The layers of any Flax model (NNX or linen): found by name, replaced, their inputs captured.

A layer is named ``"a.b"``, ``"a/b"`` or by a path ``("a", "b")``
(:func:`layer_name`). Of an NNX model, its layers are the submodules that own
``nnx.Param`` directly (:func:`nnx_layers`); of a linen model, the params
subtrees that hold arrays directly (:func:`linen_layers`). A dense layer
``h @ kernel + bias`` has one ``(M, N)`` kernel and at most one ``(N,)`` bias
(:func:`kernel_and_bias`). Its input ``h`` is captured during a traced
forward pass: an NNX layer is swapped for a :class:`Capture` that records its
argument, a linen layer's call is intercepted (``nn.intercept_methods``).
:func:`nnx_layer` and :func:`linen_layer` put this together for
:func:`xsol.models.head.explicit_head`.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable

import flax.linen as nn
import numpy as np
from flax import nnx


def layer_name(layer) -> str:
    """A layer given as ``"a.b"``, ``"a/b"``, ``("a", "b")`` or ``("layers", 2)``, as ``"a.b"``."""
    if isinstance(layer, str):
        return layer.replace("/", ".").strip(".")
    if isinstance(layer, (tuple, list)) and all(isinstance(p, (str, int, np.integer))
                                                for p in layer):
        return ".".join(str(p) for p in layer)
    raise TypeError(f"layer must be a name such as 'head' or 'layers.2', or a path such as "
                    f"('head',), got {layer!r}")


def unknown_layer(layer, available: list[str]) -> ValueError:
    """The error for a ``layer`` the model does not have, listing the ones it has."""
    listed = ", ".join(repr(a) for a in available) or "none"
    return ValueError(f"the model has no layer {layer_name(layer)!r}; its layers with "
                      f"parameters are: {listed}")


def nnx_layers(model: nnx.Module) -> dict:
    """``{name: (path, module)}`` for every submodule that owns parameters directly."""
    found = {}
    for path, module in nnx.iter_modules(model):
        if path and any(isinstance(v, nnx.Param) for v in vars(module).values()):
            found[".".join(str(p) for p in path)] = (tuple(path), module)
    return found


def linen_layers(params, prefix=()) -> dict:
    """``{name: path}`` for every params subtree that holds arrays directly."""
    found = {}
    if prefix and any(not isinstance(v, dict) for v in params.values()):
        found[".".join(prefix)] = prefix
    for k, v in params.items():
        if isinstance(v, dict):
            found.update(linen_layers(v, prefix + (str(k),)))
    return found


def kernel_and_bias(name: str, leaves: dict) -> tuple[str, str | None]:
    """The names of a dense layer's ``(M, N)`` kernel and ``(N,)`` bias among its parameters."""
    shapes = {k: tuple(np.shape(v)) for k, v in leaves.items()}
    kernels = [k for k, s in shapes.items() if len(s) == 2]
    if len(kernels) != 1:
        raise ValueError(
            f"layer {name!r} is not a dense layer (inputs (batch, M) times a kernel (M, N) plus "
            f"a bias (N,)): its parameters are {shapes}")
    kernel = kernels[0]
    N = shapes[kernel][1]
    biases = [k for k, s in shapes.items() if k != kernel and s == (N,)]
    others = [k for k in shapes if k != kernel and k not in biases[:1]]
    if len(biases) > 1 or others:
        raise ValueError(
            f"layer {name!r} is not a plain dense layer: besides its kernel {kernel!r} "
            f"{shapes[kernel]} it has the parameters "
            f"{ {k: shapes[k] for k in shapes if k != kernel} }")
    return kernel, (biases[0] if biases else None)


def get_path(tree, path):
    """``tree[path[0]][path[1]]...``."""
    for p in path:
        tree = tree[p]
    return tree


def replace_layer_params(params: dict, layer, value: dict) -> dict:
    """``params`` with the subtree of ``layer`` replaced by ``value`` (a new nested dict).

    Args:
      params: a linen params dict (or ``{"params": ..., ...}`` variables).
      layer: ``"Dense_1"``, ``"body.Dense_0"`` or a path ``("head",)``.
      value: the layer's new parameters, e.g. from :func:`explicit_head`.
    """
    variables = "params" in params and isinstance(params["params"], dict)
    tree = params["params"] if variables else params
    layers = linen_layers(tree)
    name = layer_name(layer)
    if name not in layers:
        raise unknown_layer(layer, list(layers))
    path = layers[name]

    def put(node, i):
        node = dict(node)
        node[path[i]] = dict(value) if i == len(path) - 1 else put(node[path[i]], i + 1)
        return node

    new = put(tree, 0)
    return {**params, "params": new} if variables else new


# ----------------------------------------------------------------------------- capture


class Capture(nnx.Module):
    """Stands in for an NNX layer during a traced forward pass: records its input, calls it."""

    def __init__(self, inner, record: Callable):
        self.inner = inner
        self.record = record

    def __call__(self, x, *args, **kwargs):
        self.record(x)
        return self.inner(x, *args, **kwargs)


def set_child(parent, key, child) -> None:
    """Sets ``parent.key`` (an NNX module's attribute) or ``parent[key]`` (a list item)."""
    if isinstance(parent, nnx.Module) and not isinstance(key, int):
        setattr(parent, key, child)
    else:
        parent[key] = child


def nnx_capture_fn(model: nnx.Module, path: tuple, call_kwargs: dict):
    """``(fn, state)``: ``fn(state, X)`` returns the inputs the layer at ``path`` received."""
    graphdef, state = nnx.split(model)

    def fn(state, X):
        m = nnx.merge(graphdef, state)
        parent = get_path_nnx(m, path[:-1])
        box: list = []
        set_child(parent, path[-1], Capture(get_path_nnx(parent, path[-1:]), box.append))
        m(X, **call_kwargs)
        return box

    return fn, state


def get_path_nnx(node, path):
    """The NNX submodule at ``path`` (attributes by name, list items by index)."""
    for p in path:
        if isinstance(p, int) or not isinstance(node, nnx.Module):
            node = node[p]
        else:
            node = getattr(node, p)
    return node


def linen_capture_fn(model: nn.Module, path: tuple, call_kwargs: dict, seen: dict):
    """``fn(variables, X)`` returning the inputs of the linen submodule at ``path``.

    The layer module's ``normalize`` and ``kind`` attributes (if any) are
    recorded in ``seen`` while tracing: the module exists only while the model runs.
    """

    def fn(variables, X):
        box: list = []

        def interceptor(next_fun, args, kwargs, context):
            if context.method_name == "__call__" and tuple(context.module.path) == path:
                seen["normalize"] = getattr(context.module, "normalize", None)
                seen["kind"] = getattr(context.module, "kind", "dense")
                box.append(args[0] if args else next(iter(kwargs.values())))
            return next_fun(*args, **kwargs)

        with nn.intercept_methods(interceptor):
            model.apply(variables, X, **call_kwargs)
        return box

    return fn


@dataclasses.dataclass
class LayerInfo:
    """What :func:`explicit_head` knows about the layer it fits."""

    name: str
    path: tuple
    kernel_name: str
    bias_name: str | None
    kernel: Any
    bias: Any
    normalize: str | None  # the layer's own input normalization; None: a plain dense layer
    kind: str


def nnx_layer(model: nnx.Module, layer, call_kwargs: dict):
    """``(info, fn, state)`` of an NNX model's dense ``layer``; ``fn(state, X)``: its input."""
    layers = nnx_layers(model)
    name = layer_name(layer)
    if name not in layers:
        raise unknown_layer(layer, list(layers))
    path, module = layers[name]
    leaves = {k: v for k, v in vars(module).items() if isinstance(v, nnx.Param)}
    kernel_name, bias_name = kernel_and_bias(name, {k: v[...] for k, v in leaves.items()})
    normalize = getattr(module, "normalize", None)
    kind = getattr(module, "kind", "dense")
    check_layer_kind(name, kind, normalize)
    info = LayerInfo(name, path, kernel_name, bias_name, leaves[kernel_name],
                  leaves.get(bias_name) if bias_name else None, normalize, kind)
    fn, state = nnx_capture_fn(model, path, call_kwargs)
    return info, fn, state


def linen_layer(model: nn.Module, params, layer, call_kwargs: dict):
    """``(info, fn, variables)`` of a linen model's dense ``layer``: ``fn`` captures its inputs.

    ``info.normalize`` and ``info.kind`` are known after the first call of
    ``fn`` (the layer module exists only while the model runs).
    """
    if not isinstance(params, dict):
        raise TypeError(f"params must be the linen model's params dict (or its variables), "
                        f"got {type(params).__name__}")
    is_variables = "params" in params and isinstance(params["params"], dict)
    variables = params if is_variables else {"params": params}
    layers = linen_layers(variables["params"])
    name = layer_name(layer)
    if name not in layers:
        raise unknown_layer(layer, list(layers))
    path = layers[name]
    sub = get_path(variables["params"], path)
    leaves = {k: v for k, v in sub.items() if not isinstance(v, dict)}
    kernel_name, bias_name = kernel_and_bias(name, leaves)
    seen: dict = {}
    fn = linen_capture_fn(model, path, call_kwargs, seen)
    info = LayerInfo(name, path, kernel_name, bias_name, leaves[kernel_name],
                  leaves.get(bias_name) if bias_name else None, None, "dense")

    def capture(variables, X):
        box = fn(variables, X)
        info.normalize = seen.get("normalize")
        info.kind = seen.get("kind", "dense")
        check_layer_kind(name, info.kind, info.normalize)
        return box

    return info, capture, variables


def check_layer_kind(name: str, kind, normalize) -> None:
    """Refuses a layer fed token ids, or one with a ``normalize`` other than ``"l1"``/``"none"``."""
    if kind not in (None, "dense"):
        raise ValueError(f"layer {name!r} takes {kind!r} inputs; explicit_head fits layers "
                         "fed dense features (fit a layer on token ids with xsol.fit_explicit)")
    if normalize is not None and normalize not in ("l1", "none"):
        raise ValueError(f"layer {name!r} has normalize={normalize!r}; expected 'l1' or 'none'")
