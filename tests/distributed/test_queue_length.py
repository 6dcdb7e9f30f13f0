"""The queue's length as `/metrics` shows it (`neuralens_jobs_waiting{queue="broker"}`,
`neuralens_broker_unacked`), read from the lists and the hash that Celery's Redis transport keeps: jobs sent
with no worker running are counted as waiting, a message taken and not yet acknowledged as unacked, and one
handed back as waiting again. (This module starts no worker, so nothing else takes the messages.)"""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

from neuralens.distributed import state
from neuralens.distributed.app import QUEUE
from neuralens.distributed.client import QueueClient
from neuralens.distributed.health import BrokerProbe
from neuralens.distributed.options import QueueOptions
from neuralens.style import StyleOptions
from neuralens.web.metrics import Metrics


def _levels(metrics: Metrics) -> dict:
    """{(name, labels): value} of the gauges that say how long the broker's queue is."""
    wanted = ("neuralens_jobs_waiting", "neuralens_broker_unacked", "neuralens_broker_up")
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(metrics.render().decode())
        for sample in family.samples
        if sample.name in wanted
    }


def test_waiting_and_unacked_jobs_are_counted(redis_url, storage_url, photos):
    from kombu import Consumer

    probe = BrokerProbe(redis_url, cache_seconds=0)
    metrics = Metrics(probe.status)
    broker = (("kind", "all"), ("queue", "broker"))
    try:
        assert _levels(metrics)[("neuralens_jobs_waiting", broker)] == 0
        options = StyleOptions(size=32, iterations=2, coarse_iterations=0, scales=1).validate()
        with QueueClient(QueueOptions(redis_url, storage_url)) as client:
            batch = state.new_id()
            for content in photos[:3]:
                client.submit_stylize(content, [photos[-1]], options, batch)
            levels = _levels(metrics)
            assert levels[("neuralens_jobs_waiting", broker)] == 3, levels
            assert levels[("neuralens_broker_unacked", ())] == 0 and levels[("neuralens_broker_up", ())] == 1

            # Take one message as a worker does (late acknowledgement: not acknowledged on delivery).
            taken = []
            with client.app.connection_for_read() as connection:
                queue = client.app.amqp.queues[QUEUE]
                consumer = Consumer(
                    connection,
                    queues=[queue],
                    callbacks=[lambda _body, message: taken.append(message)],
                    accept=["json"],
                    prefetch_count=1,
                )
                with consumer:
                    connection.drain_events(timeout=10)
                    assert len(taken) == 1
                    status = probe.status()
                    assert (status.waiting, status.unacked) == (2, 1)
                    levels = _levels(metrics)
                    assert levels[("neuralens_jobs_waiting", broker)] == 2
                    assert levels[("neuralens_broker_unacked", ())] == 1
                    taken[0].requeue()  # handed back, as a worker that lost its pool process does
            status = probe.status()
            assert (status.waiting, status.unacked) == (3, 0)
    finally:
        probe.close()
