"""SQS queues whose sends do not count the queue. moto's `Queue.attributes` builds every
attribute of the queue, and three of them (ApproximateNumberOfMessages, ...NotVisible,
...Delayed) walk every message in it; each SendMessage reads `attributes` once or twice for
the one value `ContentBasedDeduplication`. So a send cost O(messages waiting), and a bulk of
1,000 to a phone that had not taken them yet cost O(n²): two thirds of the local gateway's
time in a 1,000-recipient `POST /v1/messages` (py-spy). Here `attributes` is a mapping that
works out a value when it is read: a send reads one flag, GetQueueAttributes still sees all.
"""
from collections.abc import Mapping


class _LazyAttributes(Mapping):
    def __init__(self, queue, names):
        self._queue, self._names = queue, names

    def __getitem__(self, name):
        if name not in self._names:
            raise KeyError(name)
        return self._names[name](self._queue)

    def __iter__(self):
        return iter(self._names)

    def __len__(self):
        return len(self._names)


def _attribute_readers(queue) -> dict:
    """Attribute name -> how to read it, in moto's order and with moto's rules (which
    attributes a queue has, booleans as "true"/"false")."""
    import json

    from moto.core.utils import camelcase_to_underscores

    def plain(name):
        def read(q):
            value = getattr(q, camelcase_to_underscores(name))
            return str(value).lower() if isinstance(value, bool) else value
        return read

    names = list(queue.BASE_ATTRIBUTES)
    if queue.fifo_queue:
        names += queue.FIFO_ATTRIBUTES
    if queue.kms_master_key_id:
        names += queue.KMS_ATTRIBUTES
    readers = {name: plain(name) for name in names}
    if queue.policy:
        readers["Policy"] = lambda q: q.policy
    if queue.redrive_policy:
        readers["RedrivePolicy"] = lambda q: json.dumps(q.redrive_policy)
    return readers


def lazy_queue_attributes(patch=setattr) -> None:
    """Every moto SQS queue computes an attribute only when it is read."""
    from moto.sqs.models import Queue
    if getattr(Queue.attributes.fget, "lazy", False):
        return

    def attributes(self):
        return _LazyAttributes(self, _attribute_readers(self))
    attributes.lazy = True
    patch(Queue, "attributes", property(attributes))
