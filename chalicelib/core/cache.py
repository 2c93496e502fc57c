"""A small time-bounded cache that lives as long as a warm Lambda container."""
import threading

from chalicelib.core import clock


class TTLCache:
    def __init__(self, seconds_getter, max_items: int = 1024):
        self._seconds = seconds_getter
        self._max = max_items
        self._items = {}
        self._lock = threading.Lock()

    def get(self, key):
        with self._lock:
            hit = self._items.get(key)
            if hit and hit[0] > clock.now():
                return hit[1]
            self._items.pop(key, None)
            return None

    def put(self, key, value) -> None:
        ttl = self._seconds()
        if ttl <= 0:
            return
        with self._lock:
            if len(self._items) >= self._max:
                self._items.clear()
            self._items[key] = (clock.now() + ttl, value)

    def drop(self, key) -> None:
        with self._lock:
            self._items.pop(key, None)

    def clear(self) -> None:
        with self._lock:
            self._items.clear()
