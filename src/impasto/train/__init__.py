"""Training: the one loop (:mod:`.loop`), streamed data (:mod:`.data`) and one package per trainer.

A trainer module exposes ``Config`` (a dataclass declared with :func:`impasto.options.option`, with ``validate()``)
and ``train(config, *, resume, overwrite, progress, on_step)``; it is registered in :data:`impasto.api.TRAINERS`
and ``impasto train NAME`` derives its flags from ``Config``.
"""
