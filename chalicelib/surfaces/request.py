"""The one request value every surface's `handle(request)` takes. app.py builds it once per
request, whichever door the request came through (API Gateway, the function URL, the local
gateway), so header names are lower-cased, the query kept with its repeats, and the caller's
address read in one place only."""
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType


def _empty():
    return MappingProxyType({})


@dataclass(frozen=True)
class HttpRequest:
    method: str
    route: str = "/"  # the route matched, e.g. /v1/messages/{message_id}
    path_params: Mapping[str, str] = field(default_factory=_empty)
    query: Mapping[str, list[str]] = field(default_factory=_empty)  # name -> values, repeats kept
    headers: Mapping[str, str] = field(default_factory=_empty)  # names lower-cased
    body: bytes | None = None
    source_ip: str | None = None  # from the connection, never from a header
    context: Mapping = field(default_factory=_empty)  # requestContext: domain, stage

    @classmethod
    def of(cls, method: str, route: str = "/", *, path_params: Mapping | None = None,
           query: Mapping | None = None, headers: Mapping | None = None,
           body: bytes | None = None, source_ip: str | None = None,
           context: Mapping | None = None) -> "HttpRequest":
        """The request, normalised: header names lower-cased, each query value a list."""
        return cls(
            method=method.upper(), route=route,
            path_params=MappingProxyType(dict(path_params or {})),
            query=MappingProxyType({name: [values] if isinstance(values, str) else list(values)
                                    for name, values in (query or {}).items()}),
            headers=MappingProxyType({name.lower(): value
                                      for name, value in (headers or {}).items()}),
            body=body, source_ip=source_ip, context=MappingProxyType(dict(context or {})))

    @property
    def parts(self) -> tuple:
        """The path parameters in the route's order (for surfaces with their own route table)."""
        names = [part[1:-1] for part in self.route.split("/") if part.startswith("{")]
        return tuple(self.path_params[name] for name in names if self.path_params.get(name))

    @property
    def endpoint(self) -> str:
        """The route's last segment: /device/jobs -> jobs."""
        return self.route.rstrip("/").rsplit("/", 1)[-1]

    def query_lists(self) -> dict | None:
        """The query as API Gateway's multi-value form (name -> values), None when empty."""
        return {name: list(values) for name, values in self.query.items()} or None

    def last_values(self) -> dict:
        """The query with one value a name, the last given (as chalice's query_params)."""
        return {name: values[-1] for name, values in self.query.items() if values}
