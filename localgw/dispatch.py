"""moto's server finds each request's service once per host. Its dispatcher, for every request
and under one lock for all threads, lists moto's package folder (about 150 `isdir` calls) to
ask whether the Host header names a service, then tries each service's URL patterns: a tenth
of the local gateway's time in a bulk of 1,000 (py-spy). The answer depends on the host alone,
and the local gateway's hosts are a handful, so it is kept per host.
"""


def remember_backends(patch=setattr) -> None:
    """moto's server dispatcher answers a host it has seen from memory."""
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication
    original = DomainDispatcherApplication.get_backend_for_host
    if getattr(original, "remembered", False):
        return

    def get_backend_for_host(self, host):
        known = self.__dict__.setdefault("_backend_of_host", {})
        if host not in known:
            known[host] = original(self, host)
        return known[host]
    get_backend_for_host.remembered = True
    patch(DomainDispatcherApplication, "get_backend_for_host", get_backend_for_host)
