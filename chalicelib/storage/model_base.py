"""What every PynamoDB model module shares: the stage's table naming and billing, the indexes'
settings, and the one conditional-update helper. Model modules import this, and `tables`
gathers every model."""
from pynamodb.exceptions import UpdateError
from pynamodb.indexes import AllProjection, KeysOnlyProjection
from pynamodb.models import Model

from chalicelib.core import settings


class _Meta:
    region = settings.current().region
    billing_mode = "PAY_PER_REQUEST"


def table_meta(short, stream: bool = False):
    """The `Meta` of the model whose table is `short` in this stage. `stream`: the table has a
    DynamoDB stream (new and old images), which feeds the webhook events."""
    extra = {"stream_view_type": "NEW_AND_OLD_IMAGES"} if stream else {}
    return type("Meta", (_Meta,), {"table_name": settings.current().table_name(short), **extra})


def index_meta(name: str, *, keys_only: bool = False):
    """The `Meta` of a global secondary index `name`: it projects every attribute, or with
    `keys_only` only the keys (an item's writes that change no key then leave the index alone)."""
    projection = KeysOnlyProjection() if keys_only else AllProjection()
    return type("Meta", (), {"index_name": name, "projection": projection})


def update_if(item: Model, actions, condition) -> bool:
    """One conditional UpdateItem: True if it applied, False if the condition did not hold
    (another writer got there first); other errors propagate. How every state change in the
    gateway is made, so races are settled by DynamoDB, not by a read before the write."""
    try:
        item.update(actions=actions, condition=condition)
        return True
    except UpdateError as error:
        if error.cause_response_code == "ConditionalCheckFailedException":
            return False
        raise


def update_or_current(item: Model, actions, condition) -> tuple[bool, dict | None]:
    """`update_if` that also returns the item, in the same call: (True, the item as written) if
    it applied, (False, the item as it is, or None if there is none) if the condition failed
    (DynamoDB's ReturnValuesOnConditionCheckFailure=ALL_OLD). For optimistic writes that retry
    on what they lost to, without a second read. Raw DynamoDB JSON (Model.from_raw_data)."""
    from botocore.exceptions import ClientError
    table = item._get_connection()
    kwargs = table.connection.get_operation_kwargs(
        table.table_name, item._hash_key_attribute().serialize(getattr(item, item._hash_keyname)),
        actions=actions, condition=condition, return_values="ALL_NEW",
        return_values_on_condition_failure="ALL_OLD")
    try:
        return True, table.connection.dispatch("UpdateItem", kwargs).get("Attributes")
    except ClientError as error:
        if error.response.get("Error", {}).get("Code") != "ConditionalCheckFailedException":
            raise
        original = error.__cause__ if isinstance(error.__cause__, ClientError) else error
        return False, original.response.get("Item")  # PynamoDB's error keeps only the code
