"""Reading REST v1's OpenAPI document in tests."""
import re


def route_of(document, path):
    """The document's path template that `path` (with its query) is an instance of."""
    path = path.split("?")[0]
    if path in document["paths"]:
        return path
    found = [t for t in document["paths"]
             if re.fullmatch(re.sub(r"\{[^}]+\}", "[^/]+", t), path)]
    assert len(found) == 1, (path, found)
    return found[0]
