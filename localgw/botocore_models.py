"""botocore reads its JSON data once per process, not once per session. Every botocore session
gets its own data loader, and each loader parses endpoints.json, partitions.json and the
service's model and endpoint rules again (megabytes of JSON) on its first client. PynamoDB makes
a session per table (18), boto3 one per client, and tests make new clients for each moto
backend, so the local gateway's start spent half its CPU there (cProfile: `json.loads` and
`create_client` under `tables.create_all`), and every test on moto a part of its own. The data
does not change while a process runs; one loader for every session keeps it parsed.
Lambda keeps botocore's behaviour: only the local gateway and the tests install this.
"""


class _Paths(list):
    """boto3 adds its own data folder to the loader of every session it makes: once is enough
    for a shared loader (else the list grows with every boto3 session)."""

    def append(self, path):
        if path not in self:
            super().append(path)

    def insert(self, index, path):
        if path not in self:
            super().insert(index, path)


def share_loader(patch=setattr) -> None:
    """Every botocore session made from now on uses one data loader."""
    import botocore.loaders
    import botocore.session
    original = botocore.session.Session._register_data_loader
    if getattr(original, "shared", False):
        return
    loader = botocore.loaders.create_loader()
    loader._search_paths = _Paths(loader._search_paths)

    def _register_data_loader(self):
        self._components.lazy_register_component("data_loader", lambda: loader)
    _register_data_loader.shared = True
    patch(botocore.session.Session, "_register_data_loader", _register_data_loader)
