"""A local web editor for MaskGIT (`maskgit serve`): generate, inpaint, outpaint / extrapolate, class edits.

Needs the `app` extra (Gradio), imported only when `build_app` or `serve` is called, so `import maskgit`
and the rest of the command line work without it.
"""

from .uploads import Limits


def build_app(pipe, **kwargs):
    """A `gradio.Blocks` page for a `maskgit.MaskGIT` (see `maskgit.app.ui.build_app` for the options)."""
    from .ui import build_app

    return build_app(pipe, **kwargs)


def serve(model: str, **kwargs):
    """Load `model` and serve the editor until interrupted (see `maskgit.app.server.serve`)."""
    from .server import serve

    return serve(model, **kwargs)


__all__ = ["Limits", "build_app", "serve"]
