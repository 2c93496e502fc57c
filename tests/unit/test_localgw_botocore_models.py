"""localgw/botocore_models.py: one botocore data loader per process (tests/conftest.py and the
local gateway install it), so a new client does not parse botocore's JSON again."""
import boto3
import botocore.session


def test_every_session_shares_one_loader_and_its_parsed_models():
    first = botocore.session.get_session().get_component("data_loader")
    second = botocore.session.get_session().get_component("data_loader")
    assert first is second
    model = first.load_service_model("sqs", "service-2")
    assert second.load_service_model("sqs", "service-2") is model  # parsed once


def test_boto3_sessions_do_not_grow_the_shared_search_paths():
    boto3.session.Session()
    paths = list(botocore.session.get_session().get_component("data_loader").search_paths)
    for _ in range(3):
        boto3.session.Session().client("sqs", region_name="us-east-1")
    assert botocore.session.get_session().get_component("data_loader").search_paths == paths
    assert len(set(paths)) == len(paths)
