"""The local web app and HTTP API (`neuralens serve`): style transfer with live previews, and faces.

>>> from neuralens.web import create_app
>>> app = create_app(token="a-long-secret", max_queue=2)   # an ASGI app for uvicorn

The app is imported on first use (``neuralens.web.create_app``), not with the package: the command line
registers `serve` through ``neuralens.web.cli`` without paying for FastAPI's import (about 1 s).
"""

__all__ = ["WebConfig", "create_app"]


def __getattr__(name: str):
    if name in __all__:
        from . import app  # noqa: PLC0415

        return getattr(app, name)
    raise AttributeError(f"module 'neuralens.web' has no attribute {name!r}")
