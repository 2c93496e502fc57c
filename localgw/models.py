"""moto without its instance register. Every moto model (a DynamoDB item, each copy of one, a
stream record, an SQS message and the copy each receive makes of it) is appended at creation to
its class's `instances_tracked` list, for moto's /moto-api dashboard, and never leaves it: the
local gateway's phone path (lease, report, sweeps, pumps) creates thousands per message, so the
process grew with every message delivered, and records the stream pump trimmed stayed alive.
Nothing here reads the register; moto's dashboard shows no model data in the local gateway.
"""


def untrack_instances(patch=setattr) -> None:
    """moto models made from now on are not registered (and so freed when unused)."""
    from moto.core.common_models import BaseModel
    if getattr(BaseModel.__new__, "untracked", False):
        return

    def __new__(cls, *args, **kwargs):
        return super(BaseModel, cls).__new__(cls)
    __new__.untracked = True
    patch(BaseModel, "__new__", __new__)
