"""Browser tests' hooks: a test's item knows whether its call failed (`item.call_failed`), so
the journey's steps (test_journey_browser.py) can name the step that broke the journey."""
import pytest


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    report = yield
    if report.when == "call":
        item.call_failed = report.failed
    return report
