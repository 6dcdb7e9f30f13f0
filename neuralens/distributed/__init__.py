"""Scale-out: style jobs on a Celery queue backed by Redis, run by `neuralens worker` processes on any number
of machines, with inputs and results in shared storage named by a URL.

Nothing here is imported unless ``--broker`` is given: the default install runs everything in-process and
needs neither Redis nor Celery (``pip install neuralens[queue]`` adds them). The modules:

- ``options.py``: ``QueueOptions`` (broker, storage) and ``WorkerOptions`` (device, concurrency, timeouts),
  declared once like every other option group.
- ``storage.py``: shared storage by URL (``file:///shared/dir``); atomic writes, exclusive markers.
- ``state.py``: job state, progress, previews, cancel requests and leases in Redis; completion reported once.
- ``app.py`` + ``tasks.py``: the Celery app (late acknowledgement, reject on worker loss, visibility timeout)
  and the tasks (stylize by optimisation, stylize with a trained model).
- ``client.py``: submit a batch, follow it with one progress bar, collect the results.
- ``worker.py`` + ``cli.py``: `neuralens worker`.

See docs/scale-out.md.
"""
