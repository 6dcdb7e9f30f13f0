"""Scale-out: jobs (stylize, fast stylize, video, classify train, faces) on a Celery queue backed by Redis, run by `neuralens worker` processes on any number
of machines, with inputs and results in shared storage named by a URL.

Nothing here is imported unless ``--broker`` is given: the default install runs everything in-process and
needs neither Redis nor Celery (``pip install neuralens[queue]`` adds them). The modules:

- ``options.py``: ``QueueOptions`` (broker, storage) and ``WorkerOptions`` (device, concurrency, timeouts),
  declared once like every other option group.
- ``storage.py``: shared storage by URL (``file:///shared/dir``, ``s3://bucket/prefix``); atomic writes,
  exclusive markers.
- ``state.py``: job state, progress, previews, cancel requests and leases in Redis; completion reported once
  (and counted in ``stats.py``: every client's job counts and times, for ``/metrics``).
- ``app.py`` + ``tasks.py``: the Celery app (late acknowledgement, reject on worker loss, visibility timeout)
  and the tasks (stylize by optimisation or with a trained model, video, classify train, faces).
- ``client.py``: submit a batch, follow it with one progress bar, collect the results.
- ``web.py``: `neuralens serve --broker`: the web's job managers' runners on the queue.
- ``health.py``: workers' health keys, the queue's length.
- ``worker.py`` + ``cli.py``: `neuralens worker`.

See docs/scale-out.md.
"""
