"""The style-transfer methods, one package each: a torch-free declaration of its Options and an engine.

A method module exposes ``Options`` (a dataclass of :func:`impasto.options.option` fields with ``validate``) and
``load(options) -> Engine``; registering it is one line in :data:`impasto.api.METHODS`.
"""
