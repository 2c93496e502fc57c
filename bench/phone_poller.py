"""A phone for benches on the local stack: a thread long-polls GET /device/jobs and reports each
job sent at once, noting when each message first reached it (time.perf_counter())."""
import threading
import time

import requests


class PhonePoller:
    """`with PhonePoller(gw.url, token, wait=20) as phone:` the first long poll is open inside;
    `phone.arrived` maps message ids to their arrival, `phone.got_one` is set after each batch."""

    def __init__(self, url: str, device_token: str, *, wait: int):
        self.arrived: dict[str, float] = {}
        self.got_one = threading.Event()
        self._stop = threading.Event()
        self._url, self._wait = url, wait
        self._headers = {"Authorization": f"Bearer {device_token}"}

    def _poll(self):
        session = requests.Session()
        while not self._stop.is_set():
            jobs = session.get(f"{self._url}/device/jobs", params={"wait": self._wait, "max": 10},
                               headers=self._headers, timeout=40).json()["jobs"]
            now = time.perf_counter()
            for job in jobs:
                self.arrived.setdefault(job["message_id"], now)
            if jobs:
                session.post(f"{self._url}/device/reports", headers=self._headers, timeout=30,
                             json={"reports": [{"message_id": j["message_id"], "status": "sent"}
                                               for j in jobs]})
                self.got_one.set()

    def __enter__(self):
        threading.Thread(target=self._poll, daemon=True).start()
        time.sleep(0.5)  # the first long poll is open: the phone is idle, waiting
        return self

    def __exit__(self, *exc):
        self._stop.set()
