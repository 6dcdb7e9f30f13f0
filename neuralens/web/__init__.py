"""The local web app and HTTP API (`neuralens serve`): style transfer with live previews, and faces.

>>> from neuralens.web import create_app
>>> app = create_app(token="a-long-secret", max_queue=2)   # an ASGI app for uvicorn
"""

from .app import WebConfig, create_app

__all__ = ["WebConfig", "create_app"]
