"""A cookie-keeping stand-in for a browser over the Chalice test client, for the dashboard's
security tests (the real-browser tests are in test_dashboard_browser.py)."""
import re
from http.cookies import SimpleCookie
from urllib.parse import urlencode

from chalicelib.domain import users

PASSWORD = "correct horse battery staple"
FORM = "application/x-www-form-urlencoded"


class Visitor:
    def __init__(self, client, origin="http://localhost"):
        self.client, self.cookies, self.origin = client, {}, origin

    def _headers(self, extra=None):
        headers = {"host": "localhost",  # as a browser asks (a download needs */*)
                   "accept": "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"}
        if self.cookies:
            headers["cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        headers.update(extra or {})
        return headers

    def _keep(self, response):
        values = response.headers.get("Set-Cookie") or response.headers.get("set-cookie")
        for value in ([values] if isinstance(values, str) else values or []):
            jar = SimpleCookie()
            jar.load(value)
            for name, morsel in jar.items():
                if morsel["max-age"] == "0":
                    self.cookies.pop(name, None)
                else:
                    self.cookies[name] = morsel.value
        return response

    def get(self, path):
        return self._keep(self.client.http.get(path, headers=self._headers()))

    def post(self, path, data, headers=None):
        extra = {"content-type": FORM, "origin": self.origin, **(headers or {})}
        return self._keep(self.client.http.post(path, body=urlencode(data),
                                                headers=self._headers(extra)))

    def csrf(self, path="/dashboard/account"):
        return re.search(r'name="csrf" value="([^"]+)"', self.get(path).body.decode())[1]

    def submit(self, path, data=None, page="/dashboard/account"):
        """POST a form as the page would (with its CSRF token)."""
        return self.post(path, {"csrf": self.csrf(page), **(data or {})})

    def sign_in(self, email, password=PASSWORD):
        token = self.csrf("/dashboard/signin")
        return self.post("/dashboard/signin", {"csrf": token, "email": email,
                                               "password": password})


def owner(account_id, email):
    """A user with a password set through their one-time link."""
    _, token = users.add(account_id, email)
    users.set_password(token, PASSWORD, PASSWORD)
    return token


def text(response) -> str:
    """The body as text; a zip (the account's export) as its members' text, one after another."""
    if response.body[:4] == b"PK\x03\x04":
        import io
        import zipfile
        archive = zipfile.ZipFile(io.BytesIO(response.body))
        return "\n".join(archive.read(name).decode() for name in archive.namelist())
    return response.body.decode()
