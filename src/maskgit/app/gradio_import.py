"""Import Gradio without its import-time stub generator.

Every Gradio component class, when defined, runs `gradio.component_meta.create_or_modify_pyi`: it reads
the component's source file, parses it with `ast`, and rewrites the `.pyi` type stub beside it inside
site-packages. That is a development aid of Gradio's own; it takes about 2.3 s of the ~4.5 s
`import gradio` on a 2-core CPU (most of `maskgit serve`'s start-up), and writes outside our temporary
folder. `import_gradio` imports Gradio with that one function replaced by a no-op; everything else is
Gradio's own code. If a Gradio version no longer has the function, or Gradio is already imported, this
is a plain import.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import sys
import threading

STUB_MODULE, STUB_FUNCTION = "gradio.component_meta", "create_or_modify_pyi"
_lock = threading.Lock()


class _SkipStubs(importlib.abc.MetaPathFinder):
    """Finds `gradio.component_meta` as usual and swaps the stub writer out right after it runs."""

    def find_spec(self, name, path, target=None):
        if name != STUB_MODULE:
            return None
        spec = importlib.machinery.PathFinder.find_spec(name, path)
        if spec is None or spec.loader is None or not hasattr(spec.loader, "exec_module"):
            return spec
        exec_module = spec.loader.exec_module

        def exec_without_stubs(module):
            exec_module(module)
            if callable(getattr(module, STUB_FUNCTION, None)):
                setattr(module, STUB_FUNCTION, _no_stub)

        spec.loader.exec_module = exec_without_stubs
        return spec


def _no_stub(*args, **kwargs) -> None:
    return None


def import_gradio():
    """The `gradio` module, imported (once) without regenerating its type stubs."""
    with _lock:
        if "gradio" in sys.modules:
            return sys.modules["gradio"]
        finder = _SkipStubs()
        sys.meta_path.insert(0, finder)
        try:
            return importlib.import_module("gradio")
        finally:
            sys.meta_path.remove(finder)
