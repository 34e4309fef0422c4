"""Keeps an exercise honest: the library's own function may not stand in for the student's work.

``call_honestly(fn, args, targets=..., why=...)`` calls a student's function ``fn`` and raises
``ShortcutError`` (an ``AssertionError``, so a failed check) when ``fn`` uses one of ``targets``,
functions named by dotted path (``"lib3dr.renderer.blending.softmax_rgb_blend"``,
``"lib3dr.renderer.compiled.SilhouetteBlend.apply"``, ``"torch.Tensor.backward"``). Two ways:

* before the call, by reading ``fn``: the names its code uses (nested functions, and the notebook's
  own functions that it calls, followed), its default arguments and closures;
* during the call, by blocking: each target is replaced, in its own module or class and wherever a
  module of lib3dr, lib3dr_book, the notebook (``__main__``) or ``fn``'s globals holds it under any
  name, by a function that raises. Everything is put back afterwards.

This module holds no answers; the chapters' hidden tests use it too.
"""
import functools
import importlib
import sys
import types
from contextlib import contextmanager


class ShortcutError(AssertionError):
    """The student's function called (or refers to) a function the exercise asks them to write."""


def _resolve(path):
    """(owner, attribute, object) of a dotted path, or None when it does not exist here."""
    parts = path.split(".")
    for split in range(len(parts) - 1, 0, -1):
        try:
            owner = importlib.import_module(".".join(parts[:split]))
        except ImportError:
            continue
        try:
            for name in parts[split:-1]:
                owner = getattr(owner, name)
            return owner, parts[-1], getattr(owner, parts[-1])
        except AttributeError:
            return None
    return None


def _short_name(path, owner):
    """The name a student would write: the function's, or the class's for a method."""
    return owner.__name__ if isinstance(owner, type) else path.rsplit(".", 1)[-1]


def _code_names(code):
    """Global and attribute names a code object uses, nested functions and lambdas included."""
    names = set(code.co_names)
    for constant in code.co_consts:
        if isinstance(constant, types.CodeType):
            names |= _code_names(constant)
    return names


def refers_to(fn, targets, names=()):
    """The names of what ``fn`` refers to among ``targets`` (dotted paths) and ``names``, sorted.

    Reads ``fn``'s code, and that of the functions defined next to it (the notebook's) that it
    uses by name, in default arguments or closures; a library function is looked at only as a
    whole (is it a target?), not read."""
    resolved = [(path, *found) for path in targets if (found := _resolve(path)) is not None]
    objects = {id(obj): _short_name(path, owner) for path, owner, _, obj in resolved}
    wanted = set(names) | {_short_name(path, owner) for path, owner, _, _ in resolved
                           if path.startswith("lib3dr")}
    own = getattr(getattr(fn, "__func__", fn), "__globals__", None)  # the notebook's namespace
    found, seen, pending = set(), set(), [fn]
    while pending:
        f = pending.pop()
        f = getattr(f, "__func__", f)
        if isinstance(f, functools.partial):
            pending += [f.func, *f.args, *f.keywords.values()]
            continue
        if id(f) in objects:
            found.add(objects[id(f)])
            continue
        if not isinstance(f, types.FunctionType) or id(f) in seen:
            continue
        seen.add(id(f))
        used = _code_names(f.__code__)
        found |= {name for name in used & wanted  # by name, unless the notebook defines its own
                  if getattr(f.__globals__.get(name), "__globals__", None) is not own}
        values = [f.__globals__[name] for name in used if name in f.__globals__]
        values += list(f.__defaults__ or ()) + list((f.__kwdefaults__ or {}).values())
        values += [cell.cell_contents for cell in (f.__closure__ or ()) if _has_contents(cell)]
        for value in values:
            if id(value) in objects:
                found.add(objects[id(value)])
            elif isinstance(value, functools.partial) or getattr(
                    getattr(value, "__func__", value), "__globals__", None) is own:
                pending.append(value)  # the notebook's own functions, not the libraries'
    return sorted(found)


def _has_contents(cell):
    try:
        cell.cell_contents
    except ValueError:  # an empty cell (a name assigned later in the enclosing function)
        return False
    return True


def _blocker(path, why):
    def blocked(*args, **kwargs):
        raise ShortcutError(f"{path} was called: {why}")
    blocked.__name__ = path.rsplit(".", 1)[-1]
    return blocked


@contextmanager
def blocked(targets, why, namespaces=()):
    """While active, each of ``targets`` raises ``ShortcutError`` (``why`` says what to do
    instead) wherever lib3dr, lib3dr_book, ``__main__`` or ``namespaces`` (dicts) hold it."""
    undo = []
    try:
        for path in targets:
            found = _resolve(path)
            if found is None:
                continue
            owner, attribute, original = found
            replacement = _blocker(path, why)
            if isinstance(owner, type):
                own = attribute in owner.__dict__
                undo.append((owner, attribute, own, owner.__dict__.get(attribute)))
                setattr(owner, attribute, staticmethod(replacement))
                continue
            undo.append((owner, attribute, True, original))
            setattr(owner, attribute, replacement)
            holders = [vars(module) for name, module in list(sys.modules.items())
                       if module is not None and (name == "__main__" or name.split(".")[0] in ("lib3dr", "lib3dr_book"))]
            for namespace in [*holders, *namespaces]:
                for name, value in list(namespace.items()):
                    if value is original:
                        undo.append((namespace, name, True, original))
                        namespace[name] = replacement
        yield
    finally:
        for owner, attribute, own, original in reversed(undo):
            if isinstance(owner, dict):
                owner[attribute] = original
            elif own:
                setattr(owner, attribute, original)
            else:
                delattr(owner, attribute)


def call_honestly(fn, args=(), kwargs=None, *, targets, why, names=()):
    """``fn(*args, **kwargs)``, refusing (``ShortcutError``) when ``fn`` refers to or calls one of
    ``targets`` (dotted paths) or uses one of ``names``; ``why`` tells the student what to do."""
    name = getattr(fn, "__name__", "your function")
    used = refers_to(fn, targets, names)
    if used:
        raise ShortcutError(f"{name} uses {', '.join(used)}: {why}")
    with blocked(targets, why, namespaces=[getattr(fn, "__globals__", {})]):
        return fn(*args, **(kwargs or {}))


# Autograd in all its entry points, for exercises that ask for a derivative by hand.
AUTOGRAD = ("torch.autograd.grad", "torch.autograd.backward", "torch.Tensor.backward",
            "torch.autograd.functional.jacobian", "torch.autograd.functional.vjp",
            "torch.autograd.functional.jvp", "torch.func.grad", "torch.func.grad_and_value",
            "torch.func.vjp", "torch.func.jvp", "torch.func.jacrev", "torch.func.jacfwd")
AUTOGRAD_NAMES = ("autograd", "backward", "jacrev", "jacfwd", "vjp", "jvp", "grad_and_value")
