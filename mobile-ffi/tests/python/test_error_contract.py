"""The device error contract: every type of `FieldsyncError` raised from Python, through the
generated bindings, against a real `fieldsync serve`.

Covered in test_device_story.py already (not repeated here):
  Offline       test_offline_plan_check_in_and_note_reach_a_second_device (nothing listens),
                test_records_and_errors_read_the_way_python_users_expect
  Unauthorized  test_an_expired_token_is_unauthorized, test_a_revoked_phone_is_unauthorized_and_keeps_its_unsent_edits
  InvalidInput  test_bad_input_is_a_typed_error, test_a_token_of_another_user_cannot_open_this_store
  NotFound      test_a_rejected_edit_is_kept_with_its_reason_and_the_document_reset,
                test_records_and_errors_read_the_way_python_users_expect
Here: Offline after the retries of a busy server, Rejected, Storage, Cancelled (from another thread)
and Internal, and what a 422 naming one document and a 503 do to a sync.

Answers the real server gives only under load or to a broken client (503, 429, a 422 naming a
document) come from `Proxy`, a few lines of stdlib HTTP in front of the real server that answers
chosen statuses, with a body like the server's, then forwards.
"""
import http.client
import http.server
import json
import os
import tempfile
import threading
import time
import urllib.parse

import pytest

import test_device_story as story
from test_device_story import HOUR_MS, Server, customers_near_lyon, device, fs
# The same fixture: a real `fieldsync serve` for this module.
from test_device_story import server  # noqa: F401

# Which test raises each error type: a type added to the bindings needs a test named here.
RAISED_BY = {
    "Offline": ["test_device_story::test_offline_plan_check_in_and_note_reach_a_second_device",
                "test_a_server_busy_for_longer_is_offline_and_the_outbox_kept"],
    "Unauthorized": ["test_device_story::test_an_expired_token_is_unauthorized"],
    "Rejected": ["test_a_refusal_that_names_no_document_is_rejected_and_the_outbox_kept",
                 "test_a_document_refused_on_every_try_ends_rejected_not_in_a_loop"],
    "InvalidInput": ["test_device_story::test_bad_input_is_a_typed_error"],
    "NotFound": ["test_device_story::test_a_rejected_edit_is_kept_with_its_reason_and_the_document_reset"],
    "Storage": ["test_a_store_that_cannot_be_created_is_a_storage_error"],
    "Cancelled": ["test_cancel_from_another_thread_stops_a_long_bootstrap_and_it_resumes",
                  "test_cancel_from_another_thread_stops_a_retry_wait_at_once"],
    "Internal": ["test_an_answer_that_is_not_a_sync_response_is_internal"],
}


def refusal(status, code, message, doc_id=None, retry_after=None):
    """An answer shaped like the server's errors: (status, headers, JSON body)."""
    body = {"error": code, "message": message, "request_id": "req-proxy"}
    if doc_id is not None:
        body["doc_id"] = doc_id
    headers = {"Content-Type": "application/json"}
    if retry_after is not None:
        headers["Retry-After"] = str(retry_after)
    return status, headers, json.dumps(body).encode()


class Proxy:
    """In front of the real server: plays `answers` (status, headers, body) for the first requests,
    in turn, then forwards every request. Records when each request arrived."""

    def __init__(self, upstream, answers=()):
        up = urllib.parse.urlparse(upstream)
        self.answers = list(answers)
        self.arrivals = []
        self.forwarded = 0
        self.first_request = threading.Event()
        proxy = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                proxy.arrivals.append(time.monotonic())
                proxy.first_request.set()
                if proxy.answers:
                    status, headers, out = proxy.answers.pop(0)
                else:
                    conn = http.client.HTTPConnection(up.hostname, up.port, timeout=60)
                    conn.request("POST", self.path, body, {
                        k: self.headers[k] for k in ("Authorization", "Content-Type") if k in self.headers})
                    resp = conn.getresponse()
                    status, out = resp.status, resp.read()
                    headers = {k: resp.headers[k] for k in ("Content-Type", "Retry-After") if k in resp.headers}
                    conn.close()
                    proxy.forwarded += 1
                self.send_response(status)
                for k, v in headers.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(out)))
                self.end_headers()
                self.wfile.write(out)

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.httpd.server_port}"

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture(scope="module")
def paged_server():
    """A server whose bootstrap comes 8 documents a page: a first sync of many round trips."""
    with tempfile.TemporaryDirectory() as data:
        s = Server(data, ["--bootstrap-page-docs", "8"])
        yield s
        s.stop()


def phone_with_an_unsent_visit(server):
    """A bootstrapped phone with one planned visit in its outbox: (phone, customer, visit)."""
    phone = device(server, "alice", "rep")
    phone.sync(None)
    customer = customers_near_lyon(phone)[0]
    now = int(time.time() * 1000)
    visit = phone.plan_visit(customer.id, now, now + HOUR_MS)
    assert phone.outbox_size() == 1
    return phone, customer, visit


def seen_by_the_manager(server, visit_id):
    maria = device(server, "maria", "manager")
    maria.sync(None)
    return maria.get_visit(visit_id)


def test_every_error_type_is_raised_by_a_test():
    variants = {n for n, v in vars(fs.FieldsyncError).items() if isinstance(v, type) and issubclass(v, Exception)}
    assert variants == set(RAISED_BY), "an error type without a test raising it, or a test for a type that is gone"
    here = globals()
    for name, tests in RAISED_BY.items():
        for t in tests:
            module, _, fn = t.rpartition("::")
            assert callable(getattr(story, fn, None) if module else here.get(fn)), (name, t)


# --- Offline: a busy server is retried ------------------------------------------------------------

@pytest.mark.parametrize("status, retry_after", [(503, 0), (429, 0), (502, None), (504, None)])
def test_a_busy_server_is_retried_and_the_sync_goes_through(server, status, retry_after):
    phone, _, _ = phone_with_an_unsent_visit(server)
    busy = refusal(status, "overloaded", "the server is at its limit", retry_after=retry_after)
    with Proxy(server.url, [busy, busy]) as proxy:
        phone.set_server_url(proxy.url)
        summary = phone.sync(None)
        assert len(proxy.arrivals) == 2 + proxy.forwarded and proxy.forwarded >= 1
    # An empty outbox: the server acknowledged the visit.
    assert summary.outbox_size == 0 and phone.outbox_size() == 0, summary


def test_a_server_busy_for_longer_is_offline_and_the_outbox_kept(server):
    phone, _, _ = phone_with_an_unsent_visit(server)
    busy = refusal(503, "overloaded", "the server is at its limit", retry_after=0)
    with Proxy(server.url, [busy] * 10) as proxy:
        phone.set_server_url(proxy.url)
        with pytest.raises(fs.FieldsyncError.Offline) as e:
            phone.sync(None)
        assert len(proxy.arrivals) == 4, "one try and three retries"
    assert "HTTP 503, 4 tries" in e.value.message, e.value.message
    assert phone.outbox_size() == 1
    phone.set_server_url(server.url)
    phone.sync(None)
    assert phone.outbox_size() == 0


def test_retry_after_is_honoured_and_a_long_one_not_waited_for(server):
    phone, _, _ = phone_with_an_unsent_visit(server)
    with Proxy(server.url, [refusal(503, "overloaded", "busy", retry_after=1)]) as proxy:
        phone.set_server_url(proxy.url)
        phone.sync(None)
        assert proxy.arrivals[1] - proxy.arrivals[0] >= 1.0, "waited the second the server asked for"
    assert phone.outbox_size() == 0
    # A server asking for more than a sync waits in all (5 s) is not waited for: Offline at once.
    now = int(time.time() * 1000)
    phone.plan_visit(customers_near_lyon(phone)[1].id, now, now + HOUR_MS)
    with Proxy(server.url, [refusal(429, "too_many_requests", "slow down", retry_after=60)]) as proxy:
        phone.set_server_url(proxy.url)
        started = time.monotonic()
        with pytest.raises(fs.FieldsyncError.Offline) as e:
            phone.sync(None)
        assert time.monotonic() - started < 4
        assert len(proxy.arrivals) == 1
    assert "retry after 60 s" in e.value.message, e.value.message
    assert phone.outbox_size() == 1


# --- Rejected: a refusal naming one document, and one naming none -----------------------------------

def test_a_refusal_naming_a_document_sets_its_edits_aside_and_the_others_sync(server):
    phone, customer, visit = phone_with_an_unsent_visit(server)
    noted = customers_near_lyon(phone)[-1]
    phone.set_customer_notes(noted.id, "typed by an outdated app")
    assert phone.outbox_size() == 2
    reason = "customer: schema 99 is newer than this server's"
    with Proxy(server.url, [refusal(422, "invalid_document", reason, doc_id=noted.id)]) as proxy:
        phone.set_server_url(proxy.url)
        summary = phone.sync(None)
        assert proxy.forwarded >= 1
    # The refused document's edits are kept for the user, with the server's reason...
    assert [r.doc_id for r in summary.rejected] == [noted.id], summary.rejected
    kept = [r for r in phone.rejected_edits() if r.doc_id == noted.id]
    assert len(kept) == 1 and kept[0].reason == reason and kept[0].changes >= 1, kept
    assert "typed by an outdated app" in (kept[0].attempted_json or "")
    # ...the document is back at what the server acknowledged, and the other one went through.
    assert phone.get_customer(noted.id).notes != "typed by an outdated app"
    assert phone.outbox_size() == 0
    assert seen_by_the_manager(server, visit.id).customer_id == customer.id


def test_a_refusal_that_names_no_document_is_rejected_and_the_outbox_kept(server):
    phone, _, _ = phone_with_an_unsent_visit(server)
    with Proxy(server.url, [refusal(409, "conflict", "the team's plan moved on")]) as proxy:
        phone.set_server_url(proxy.url)
        with pytest.raises(fs.FieldsyncError.Rejected) as e:
            phone.sync(None)
    assert e.value.doc == "" and e.value.reason == "the team's plan moved on", repr(e.value)
    assert phone.outbox_size() == 1 and phone.rejected_edits() == []


def test_a_document_refused_on_every_try_ends_rejected_not_in_a_loop(server):
    phone, _, visit = phone_with_an_unsent_visit(server)
    refused = refusal(422, "invalid_document", "visit: broken", doc_id=visit.id)
    with Proxy(server.url, [refused] * 40) as proxy:
        phone.set_server_url(proxy.url)
        with pytest.raises(fs.FieldsyncError.Rejected) as e:
            phone.sync(None)
        assert len(proxy.arrivals) <= 20, "a bounded number of tries"
    assert e.value.doc == visit.id, repr(e.value)
    # The edit was set aside once, with its reason; the sync did not make up empty ones after.
    kept = phone.rejected_edits()
    assert [(r.doc_id, r.reason) for r in kept] == [(visit.id, "visit: broken")], kept


# --- Storage, Internal ----------------------------------------------------------------------------

def test_a_store_that_cannot_be_created_is_a_storage_error(server):
    with tempfile.TemporaryDirectory() as tmp:
        # A regular file where a directory of the path should be (chmod would not stop root).
        blocker = os.path.join(tmp, "not-a-directory")
        with open(blocker, "w") as f:
            f.write("x")
        with pytest.raises(fs.FieldsyncError.Storage) as e:
            fs.FieldsyncClient.open(os.path.join(blocker, "store"), server.url)
        assert str(e.value).startswith("storage: "), str(e.value)


def test_an_answer_that_is_not_a_sync_response_is_internal(server):
    phone, _, _ = phone_with_an_unsent_visit(server)
    garbage = (200, {"Content-Type": "application/x-fieldsync"}, b"\x00garbage, not a frame" * 10)
    failure = refusal(500, "internal", "something went wrong on the server; quote request id req-proxy")
    with Proxy(server.url, [garbage, failure]) as proxy:
        phone.set_server_url(proxy.url)
        with pytest.raises(fs.FieldsyncError.Internal) as e:
            phone.sync(None)
        assert "bad response" in e.value.message, e.value.message
        with pytest.raises(fs.FieldsyncError.Internal) as e:
            phone.sync(None)
        assert e.value.message.startswith("HTTP 500: "), e.value.message
        assert len(proxy.arrivals) == 2, "a server error is not retried"
    assert phone.outbox_size() == 1


# --- Cancelled, from another thread ---------------------------------------------------------------

class CancelOnFirstProgress(fs.SyncProgress):
    """At the first progress, has another thread call `cancel_sync` and waits until it has."""

    def __init__(self, phone):
        self.phone = phone
        self.calls = 0
        self.cancelled = threading.Event()

    def on_progress(self, round, docs_received, changes_received, more):
        self.calls += 1
        if self.calls == 1:
            assert more, "the bootstrap takes more than one round"

            def cancel():
                self.phone.cancel_sync()
                self.cancelled.set()

            threading.Thread(target=cancel).start()
            assert self.cancelled.wait(30), "the other thread called cancel_sync"


def test_cancel_from_another_thread_stops_a_long_bootstrap_and_it_resumes(paged_server):
    phone = device(paged_server, "alice", "rep")
    progress = CancelOnFirstProgress(phone)
    with pytest.raises(fs.FieldsyncError.Cancelled):
        phone.sync(progress)
    assert progress.calls == 1, "stopped right after the round in which it was cancelled"
    status = phone.status()
    assert not status.syncing and status.last_sync_ms is None
    partial = status.documents
    assert 0 < partial
    # Resumed: the next sync finishes the bootstrap, and ends where one never cancelled does.
    summary = phone.sync(None)
    assert summary.rounds > 1 and phone.status().last_sync_ms is not None
    whole = device(paged_server, "alice", "rep")
    whole.sync(None)
    assert partial < phone.status().documents == whole.status().documents


def test_cancel_from_another_thread_stops_a_retry_wait_at_once(server):
    phone, _, _ = phone_with_an_unsent_visit(server)
    # The server asks for 4 s (within what a sync waits): the cancel must not wait them out.
    busy = refusal(503, "overloaded", "busy", retry_after=4)
    with Proxy(server.url, [busy] * 5) as proxy:
        phone.set_server_url(proxy.url)

        def cancel_once_the_request_is_in():
            assert proxy.first_request.wait(30)
            phone.cancel_sync()

        canceller = threading.Thread(target=cancel_once_the_request_is_in)
        canceller.start()
        started = time.monotonic()
        with pytest.raises(fs.FieldsyncError.Cancelled):
            phone.sync(None)
        elapsed = time.monotonic() - started
        canceller.join()
        assert len(proxy.arrivals) == 1
    assert elapsed < 3, f"cancelled within the 4 s wait, not after it ({elapsed:.1f} s)"
    assert phone.outbox_size() == 1
