// One call of SMSGate's npm client (android-sms-gateway, pinned in package.json, unmodified)
// for tests/e2e/test_smsgate_npm.py:
//   node call.mjs <base url> <login> <password> <method> '<JSON list of arguments>'
// Arguments {"$date": "..."} become Date objects. Prints one JSON line: {"ok": true, "value"}
// or {"ok": false, "status", "body"} for an HTTP error.
import Client from "android-sms-gateway";

// The README's fetch-based HttpClient, plus what its example leaves out: an HTTP error is
// thrown with its status and body, and an empty answer (a 204) is undefined, not a JSON error.
async function request(method, url, headers, body) {
  const response = await fetch(url, {
    method, headers, body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await response.text();
  const decoded = text ? JSON.parse(text) : undefined;
  if (!response.ok) {
    throw Object.assign(new Error(`HTTP ${response.status}`),
                        { status: response.status, body: decoded });
  }
  return decoded;
}

const http = {
  get: (url, headers) => request("GET", url, headers),
  post: (url, body, headers) => request("POST", url, headers, body),
  put: (url, body, headers) => request("PUT", url, headers, body),
  patch: (url, body, headers) => request("PATCH", url, headers, body),
  delete: (url, headers) => request("DELETE", url, headers),
};

const [baseUrl, login, password, method, rawArgs] = process.argv.slice(2);
const args = JSON.parse(rawArgs || "[]").map(function revive(value) {
  if (value && typeof value === "object" && !Array.isArray(value)) {
    if ("$date" in value) return new Date(value.$date);
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, revive(v)]));
  }
  return value;
});
const client = new Client(login, password, http, baseUrl);
try {
  const value = await client[method](...args);
  console.log(JSON.stringify({ ok: true, value: value === undefined ? null : value }));
} catch (error) {
  if (error.status === undefined) throw error;
  console.log(JSON.stringify({ ok: false, status: error.status, body: error.body }));
}
