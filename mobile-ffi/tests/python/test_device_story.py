"""The device library through its generated Python bindings, against a real `fieldsync serve`.

Run by .ci/run after mobile-ffi/generate-bindings.sh; FIELDSYNC_BINDINGS points at the generated
Python package and FIELDSYNC_BIN at the server binary.
"""
import math
import os
import re
import socket
import subprocess
import sys
import tempfile
import threading
import time

import pytest

sys.path.insert(0, os.environ.get("FIELDSYNC_BINDINGS", "target/bindings/python"))
from fieldsync import fieldsync_core as core  # noqa: E402
from fieldsync import fieldsync_mobile as fs  # noqa: E402

BIN = os.environ.get("FIELDSYNC_BIN", "target/debug/fieldsync")
HOUR_MS = 3_600_000


def unused_url():
    """An address where nothing listens: the phone is offline."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return f"http://127.0.0.1:{port}"


class Server:
    """A real `fieldsync serve` on a loopback port (the demo team seeded), with `args` added."""

    def __init__(self, data, args=()):
        self.data = data
        self.proc = subprocess.Popen(
            [BIN, "serve", "--data", data, "--addr", "127.0.0.1:0", *args],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
        )
        deadline = time.time() + 60
        self.url = None
        while time.time() < deadline:
            line = self.proc.stdout.readline()
            if not line:
                break
            m = re.match(r"fieldsync listening on (http://\S+)", line)
            if m:
                self.url = m.group(1)
                break
        assert self.url, "the server printed its address"
        threading.Thread(target=self.proc.stdout.read, daemon=True).start()

    def token(self, user, role, extra=()):
        out = subprocess.run(
            [BIN, "token", "--data", self.data, "--team", "demo", "--user", user, "--role", role, *extra],
            check=True, capture_output=True, text=True,
        )
        return out.stdout.strip()

    def stop(self):
        self.proc.terminate()
        self.proc.wait(timeout=30)


@pytest.fixture(scope="module")
def server():
    with tempfile.TemporaryDirectory() as data:
        s = Server(data)
        yield s
        s.stop()


def device(server, user, role):
    d = tempfile.mkdtemp()
    c = fs.FieldsyncClient.open(d, server.url)
    c.set_token(server.token(user, role))
    return c


def customers_near_lyon(phone):
    """The phone's customers within 50 km of Lyon, nearest first."""
    return [n.customer for n in phone.customers_near(45.7640, 4.8357, 50_000.0, [], [])]


def plan_a_visit_now(phone):
    """Bootstraps the phone and plans a visit of the next hour at its nearest customer near Lyon:
    (customer, visit, now)."""
    phone.sync(None)
    customer = customers_near_lyon(phone)[0]
    now = int(time.time() * 1000)
    return customer, phone.plan_visit(customer.id, now, now + HOUR_MS), now


class Progress(fs.SyncProgress):
    def __init__(self):
        self.calls = []

    def on_progress(self, round, docs_received, changes_received, more):
        self.calls.append((round, docs_received, changes_received, more))


def test_offline_plan_check_in_and_note_reach_a_second_device(server):
    # 1. Alice's phone bootstraps her customers, with progress reported.
    alice = device(server, "alice", "rep")
    progress = Progress()
    summary = alice.sync(progress)
    assert summary.pulled_docs > 0 and progress.calls, "bootstrap with progress"
    near = alice.customers_near(45.7640, 4.8357, 50_000.0, [], [])
    assert near, "alice holds her customers"
    customer = near[0].customer

    # 2. Offline: plan, check in at the door, write a note.
    alice.set_server_url(unused_url())
    now = int(time.time() * 1000)
    visit = alice.plan_visit(customer.id, now, now + HOUR_MS)
    result = alice.check_in(visit.id, fs.GpsFix(
        lat=customer.location.lat, lon=customer.location.lon, accuracy_m=8.0,
        device_time_ms=now, mock_location=False))
    assert result.verification.status == core.VerificationStatus.VERIFIED
    assert result.visit.state == core.VisitState.CHECKED_IN
    alice.set_visit_notes(visit.id, "Owner wants the spring catalogue.")
    with pytest.raises(fs.FieldsyncError.Offline):
        alice.sync(None)
    assert alice.outbox_size() == 1

    # 3. Online again: the sync pushes it; the manager's tablet sees it with the server's verdict.
    alice.set_server_url(server.url)
    alice.sync(None)
    assert alice.outbox_size() == 0
    assert alice.status().last_sync_ms is not None
    maria = device(server, "maria", "manager")
    maria.sync(None)
    seen = maria.get_visit(visit.id)
    assert seen.notes == "Owner wants the spring catalogue."
    assert seen.verification[seen.checkins[0].id].status == core.VerificationStatus.VERIFIED


def test_a_far_check_in_is_flagged_on_the_spot(server):
    # Chloe has no check-in in these tests: travel speed is not what is judged here.
    chloe = device(server, "chloe", "rep")
    customer, visit, now = plan_a_visit_now(chloe)
    # Now (a time ahead of the phone's own clock would be clock skew: invalid).
    far = chloe.check_in(visit.id, fs.GpsFix(
        lat=customer.location.lat + 0.01, lon=customer.location.lon, accuracy_m=10.0,
        device_time_ms=now, mock_location=True))
    assert far.verification.status == core.VerificationStatus.FLAGGED, far.verification.reasons
    # The same record the server writes into the visit: snake_case codes and a sentence each.
    codes = {r.code for r in far.verification.reasons}
    assert "outside_fence" in codes and "mock_location" in codes, codes
    assert all(r.message for r in far.verification.reasons), far.verification.reasons


def test_a_rejected_edit_is_kept_with_its_reason_and_the_document_reset(server):
    # 1. Alice writes a note offline on a customer the manager hands to bruno meanwhile.
    alice = device(server, "alice", "rep")
    alice.sync(None)
    customer = customers_near_lyon(alice)[-1]
    alice.set_customer_notes(customer.id, "Alice was here")
    maria = device(server, "maria", "manager")
    maria.sync(None)
    maria.reassign_customer(customer.id, "bruno", "territory-bruno")
    maria.sync(None)

    # 2. Alice syncs: her edit is refused, kept for her, and the customer leaves her phone.
    summary = alice.sync(None)
    assert summary.rejected, summary
    kept = alice.rejected_edits()
    assert any(r.doc_id == customer.id and "Alice was here" in (r.attempted_json or "") for r in kept), kept
    with pytest.raises(fs.FieldsyncError.NotFound) as gone:
        alice.get_customer(customer.id)
    assert gone.value.id == customer.id


def test_an_expired_token_is_unauthorized(server):
    alice = device(server, "alice", "rep")
    expired = server.token("alice", "rep", ["--ttl", "1h", "--issued-at", str(int(time.time()) - 3 * 3600)])
    alice.set_token(expired)
    with pytest.raises(fs.FieldsyncError.Unauthorized):
        alice.sync(None)
    alice.set_token(server.token("alice", "rep"))
    alice.sync(None)


def test_a_token_of_another_user_cannot_open_this_store(server):
    alice = device(server, "alice", "rep")
    with pytest.raises(fs.FieldsyncError.InvalidInput):
        alice.set_token(server.token("bruno", "rep"))


def test_bad_input_is_a_typed_error(server):
    alice = device(server, "alice", "rep")
    customer, visit, now = plan_a_visit_now(alice)
    for lat, lon, acc in [(123.0, 4.0, 5.0), (math.nan, 4.0, 5.0), (45.0, -200.0, 5.0), (45.0, 4.0, math.nan), (45.0, 4.0, -1.0)]:
        with pytest.raises(fs.FieldsyncError.InvalidInput):
            alice.check_in(visit.id, fs.GpsFix(lat=lat, lon=lon, accuracy_m=acc, device_time_ms=now, mock_location=False))
    with pytest.raises(fs.FieldsyncError.InvalidInput):
        alice.plan_visit("", now, now + HOUR_MS)
    with pytest.raises(fs.FieldsyncError.InvalidInput):
        alice.check_in("", fs.GpsFix(lat=45.0, lon=4.0, accuracy_m=5.0, device_time_ms=now, mock_location=False))
    with pytest.raises(fs.FieldsyncError.InvalidInput):
        alice.create_prospect("", 45.0, 4.0, "")
    with pytest.raises(fs.FieldsyncError.InvalidInput):
        fs.FieldsyncClient.open("", server.url)
    # A rep may not change a tier: refused before anything is written.
    with pytest.raises(fs.FieldsyncError.InvalidInput):
        alice.reassign_customer(customer.id, "bruno", None)


def test_the_transport_free_pair_syncs_through_the_apps_own_networking(server):
    import urllib.request
    alice = device(server, "alice", "rep")
    token = server.token("alice", "rep")
    rounds = 0
    while True:
        body = alice.prepare_sync_request()
        req = urllib.request.Request(server.url + "/v1/sync", data=bytes(body), method="POST", headers={
            "Authorization": "Bearer " + token, "Content-Type": "application/x-fieldsync"})
        with urllib.request.urlopen(req) as resp:
            summary = alice.apply_sync_response(resp.read())
        rounds += 1
        if not summary.more and summary.outbox_size == 0:
            break
        assert rounds < 100
    assert alice.status().documents > 0
    with pytest.raises(fs.FieldsyncError.InvalidInput):
        alice.apply_sync_response(b"not a response")


def test_writes_survive_reopening_the_store(server):
    d = tempfile.mkdtemp()
    c = fs.FieldsyncClient.open(d, server.url)
    c.set_token(server.token("alice", "rep"))
    customer, visit, _ = plan_a_visit_now(c)
    device_id = c.device_id()
    del c
    again = fs.FieldsyncClient.open(d, server.url)
    assert again.device_id() == device_id
    assert again.get_visit(visit.id).customer_id == customer.id
    assert again.outbox_size() == 1


def test_a_write_that_returned_survives_a_kill_9_right_after(server):
    d = tempfile.mkdtemp()
    token = server.token("alice", "rep")
    child = f"""
import os, signal, sys, time
sys.path.insert(0, {os.environ.get("FIELDSYNC_BINDINGS", "target/bindings/python")!r})
from fieldsync import fieldsync_mobile as fs
c = fs.FieldsyncClient.open({d!r}, {server.url!r})
c.set_token({token!r})
c.sync(None)
customer = c.customers_near(45.7640, 4.8357, 50_000.0, [], [])[0].customer
now = int(time.time() * 1000)
v = c.plan_visit(customer.id, now, now + 3_600_000)
c.set_visit_notes(v.id, "typed just before the crash")
print(v.id, flush=True)
os.kill(os.getpid(), signal.SIGKILL)
"""
    out = subprocess.run([sys.executable, "-c", child], capture_output=True, text=True)
    assert out.returncode == -9, out.stderr
    visit_id = out.stdout.strip()
    again = fs.FieldsyncClient.open(d, server.url)
    assert again.get_visit(visit_id).notes == "typed just before the crash"


def test_a_rep_plans_her_day_offline_from_the_documents_on_her_phone(server):
    import datetime
    alice = device(server, "alice", "rep")
    alice.sync(None)
    alice.set_server_url(unused_url())  # offline from here on
    overdue = alice.overdue_customers(int(time.time() * 1000))
    assert overdue, "some of alice's customers are due"
    assert all(o.urgency >= n.urgency for o, n in zip(overdue, overdue[1:])), "most urgent first"
    day = datetime.date.today() + datetime.timedelta(days=1)
    while day.weekday() >= 5:  # a working day: the demo customers open Monday to Friday
        day += datetime.timedelta(days=1)
    plan = alice.plan_my_day(day.isoformat(), "Europe/Paris", 45.7640, 4.8357, 8 * 60 + 30, 18 * 60)
    assert len(plan.stops) >= 3, plan
    ids = [s.customer_id for s in plan.stops]
    assert len(ids) == len(set(ids)), "no customer twice"
    for a, b in zip(plan.stops, plan.stops[1:]):
        assert a.depart_ms <= b.arrival_ms and b.arrival_ms <= b.start_ms <= b.depart_ms
    for s in plan.stops:
        assert alice.get_customer(s.customer_id).owner_rep == "alice"
    with pytest.raises(fs.FieldsyncError.InvalidInput):
        alice.plan_my_day("30/11/2026", "Europe/Paris", 45.76, 4.83, 510, 1080)
    with pytest.raises(fs.FieldsyncError.InvalidInput):
        alice.plan_my_day(day.isoformat(), "Mars/Olympus", 45.76, 4.83, 510, 1080)


def test_records_and_errors_read_the_way_python_users_expect(server):
    alice = device(server, "alice", "rep")
    # sync() needs no progress listener.
    summary = alice.sync()
    assert summary.pulled_docs > 0
    # A record's repr shows its fields, as a dataclass would.
    point = core.GeoPoint(lat=45.76, lon=4.83, datum="wgs84")
    assert repr(point) == "GeoPoint(lat=45.76, lon=4.83, datum=wgs84)", repr(point)
    assert "GeoPoint(lat=" in repr(customers_near_lyon(alice)[0])
    # A field of the wrong type is refused when the record is built, not inside a later call.
    with pytest.raises(TypeError):
        fs.GpsFix(lat="45", lon=4.83, accuracy_m=5.0, device_time_ms=0, mock_location=False)
    with pytest.raises(TypeError):
        core.GeoPoint(lat=45.76, lon=4.83, datum=None)
    # An error reads as a sentence, and keeps its typed fields.
    offline = fs.FieldsyncClient.open(tempfile.mkdtemp(), unused_url())
    offline.set_token(server.token("alice", "rep"))
    with pytest.raises(fs.FieldsyncError.Offline) as e:
        offline.sync()
    assert str(e.value).startswith("offline: ") and "message=" not in str(e.value), str(e.value)
    assert e.value.message and e.value.message in str(e.value)
    assert repr(e.value).startswith("FieldsyncError.Offline(message=")
    with pytest.raises(fs.FieldsyncError.NotFound) as e:
        alice.get_visit("visit-that-never-was")
    assert str(e.value) == "not found: visit-that-never-was", str(e.value)
    with pytest.raises(fs.FieldsyncError.InvalidInput) as e:
        alice.check_in("", fs.GpsFix(lat=45.0, lon=4.0, accuracy_m=5.0, device_time_ms=0, mock_location=False))
    assert str(e.value).startswith("invalid "), str(e.value)


def test_a_revoked_phone_is_unauthorized_and_keeps_its_unsent_edits(server):
    import json
    import urllib.error
    import urllib.request
    # 1. Chloe's phone syncs, then she loses it with an edit not yet sent.
    phone = device(server, "chloe", "rep")
    customer, visit, now = plan_a_visit_now(phone)
    phone.set_visit_notes(visit.id, "Left at the café.")
    # 2. Her manager revokes it over HTTP.
    req = urllib.request.Request(
        server.url + "/v1/devices/revoke",
        data=json.dumps({"device_id": phone.device_id(), "reason": "lost"}).encode(),
        method="POST",
        headers={"Authorization": "Bearer " + server.token("maria", "manager"),
                 "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(req) as resp:
        assert json.load(resp)["device_id"] == phone.device_id()
    # 3. The phone's next sync is Unauthorized, typed, and its edit stays in the outbox.
    with pytest.raises(fs.FieldsyncError.Unauthorized) as e:
        phone.sync(None)
    assert "revoked" in str(e.value)
    assert phone.status().outbox_size > 0
    # 4. Her new phone syncs as usual.
    new_phone = device(server, "chloe", "rep")
    assert new_phone.sync(None).pulled_docs > 0
