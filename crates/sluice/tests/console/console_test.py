"""The web console in headless Chromium (Debian's, driven by Playwright), against a real
`sluice serve` and a real broker started by crates/sluice/tests/it/console.rs, which passes:

  CONSOLE_URL  the serve's https:// URL      AKID, SECRET  an access key it accepts
  SPKI_PIN     base64 SHA-256 of the serve certificate's SubjectPublicKeyInfo: the one
               certificate Chromium accepts (Playwright's own requests trust the test's CA
               through NODE_EXTRA_CA_CERTS)
  BOOTSTRAP    the broker                    TOPIC         an existing topic (1 partition)
  TARGET_URL   an HTTP receiver              SHOTS         where screenshots go
  FAILING_TOPIC, FAILING_TARGET_URL  another topic, and a receiver that answers 500
  LOG_FILE     where the failing pipe's execution log goes (file://)

Each step asserts what the console must show; a failed assertion exits non-zero."""

import json
import os
import pathlib
import time

from confluent_kafka import Producer
from playwright.sync_api import expect, sync_playwright

URL = os.environ["CONSOLE_URL"].rstrip("/")
CONSOLE = URL + "/console/"
AKID, SECRET = os.environ["AKID"], os.environ["SECRET"]
BOOTSTRAP, TOPIC = os.environ["BOOTSTRAP"], os.environ["TOPIC"]
TARGET = os.environ["TARGET_URL"]
GATE_FILE = os.environ["GATE_FILE"]
SHOTS = os.environ["SHOTS"]
SPKI_PIN = os.environ["SPKI_PIN"]
FAILING_TOPIC, FAILING_TARGET = os.environ["FAILING_TOPIC"], os.environ["FAILING_TARGET_URL"]
LOG_FILE = os.environ["LOG_FILE"]
WAIT_MS = 90_000


def step(what):
    print(f"console test: {what}", flush=True)


def shot(page, name):
    page.screenshot(path=os.path.join(SHOTS, f"{name}.png"), full_page=True)


def nothing_without_a_session(request):
    step("no page, script or JSON without a session")
    for path in ["api/pipes", "api/session", "api/pipes/x", "api/instances", "assets/app.js"]:
        r = request.get(CONSOLE + path)
        assert r.status == 401, f"{path}: {r.status}"
    r = request.post(CONSOLE + "api/v1/pipes/x/stop")
    assert r.status == 401, r.status
    assert "Sign in" in request.get(CONSOLE).text()


def sign_in(page):
    step("a wrong key is refused, a valid key signs in")
    page.goto(CONSOLE)
    shot(page, "signin")
    page.get_by_label("Access key id").fill(AKID)
    page.get_by_label("Secret access key").fill(SECRET + "x")
    with page.expect_response(lambda r: r.url.endswith("/console/signin")) as resp:
        page.get_by_role("button", name="Sign in").click()
    assert resp.value.status == 401, resp.value.status
    expect(page.get_by_role("alert")).to_contain_text("refused")
    page.get_by_label("Access key id").fill(AKID)
    page.get_by_label("Secret access key").fill(SECRET)
    page.get_by_role("button", name="Sign in").click()
    expect(page.locator("#who")).to_have_text(f"signed in as {AKID}")
    expect(page.locator("#dev-banner")).to_be_hidden()
    session_cookie_is_locked_down(page)


def session_cookie_is_locked_down(page):
    step("over HTTPS the session cookie is Secure, HttpOnly and SameSite=Strict")
    assert page.url.startswith("https://"), page.url
    cookies = [c for c in page.context.cookies() if c["name"] == "sluice_console"]
    assert len(cookies) == 1, cookies
    c = cookies[0]
    assert c["secure"] and c["httpOnly"] and c["sameSite"] == "Strict", {**c, "value": "..."}
    assert page.evaluate("document.cookie") == "", "the session cookie is readable by scripts"


def csrf_is_required(page):
    step("a state change without the CSRF token is refused")
    r = page.request.post(CONSOLE + "api/v1/pipes/x/stop")
    assert r.status == 403, r.status
    assert "CSRF" in r.json()["message"]
    r = page.request.post(CONSOLE + "api/v1/pipes/x/stop", headers={"X-CSRF-Token": "0" * 64})
    assert r.status == 403, r.status


def create_from_the_page(page):
    step("create a pipe on the Create page, its filter tested in the page")
    page.goto(CONSOLE + "#/create")
    page.get_by_label("Name", exact=True).fill("orders")
    page.get_by_label("Bootstrap servers (self-managed Kafka)").fill(BOOTSTRAP)
    page.get_by_label("Topic").fill(TOPIC)
    page.get_by_label("Starting position").select_option("TRIM_HORIZON")
    page.get_by_label("Event pattern (empty: every record passes)").fill('{"value": {"kind": ["small"]}}')
    page.get_by_role("button", name="Test pattern").click()
    expect(page.locator("#pattern-result")).to_have_attribute("data-result", "false")
    page.get_by_label("Event pattern (empty: every record passes)").fill('{"value": {"kind": ["order"]}}')
    page.get_by_role("button", name="Test pattern").click()
    expect(page.locator("#pattern-result")).to_have_attribute("data-result", "true")
    page.get_by_label("Target (URL or ARN)").fill(TARGET)
    page.get_by_label("Input template (preview on the event above)").fill('{"id": <$.value.id>}')
    expect(page.locator("#template-preview")).to_have_text('{"id": "A1"}')
    shot(page, "create")
    page.get_by_role("button", name="Create pipe").click()
    step("it reaches RUNNING on the Pipes page without a reload")
    page.evaluate("window.notReloaded = true")
    row = page.locator('#pipes tr[data-pipe="orders"]')
    expect(row).to_have_attribute("data-state", "RUNNING", timeout=WAIT_MS)
    assert page.evaluate("window.notReloaded") is True


def validation_messages(page):
    step("a bad edit shows the API's validation message")
    page.goto(CONSOLE + "#/pipe/orders")
    page.get_by_label("BatchSize").fill("0")
    page.get_by_role("button", name="Save").click()
    expect(page.locator("#edit-error")).to_contain_text("BatchSize")


def series(page, chart):
    return json.loads(page.locator(chart).get_attribute("data-series") or "[]")


def figures_move(page):
    step("records produced make records/s rise and lag fall in the charts")
    producer = Producer({"bootstrap.servers": BOOTSTRAP})
    for i in range(4000):
        producer.produce(TOPIC, key=f"k{i}", value=json.dumps({"kind": "order", "id": f"A{i}"}))
    left = producer.flush(30)
    assert left == 0, f"{left} records were not produced"
    page.goto(CONSOLE + "#/pipe/orders")
    # The target holds deliveries until the gate opens: first the backlog must show as lag.
    peak_lag = wait_for_lag(page, lambda lag: lag > 0, "lag never rose above 0 with 4,000 records waiting")
    pathlib.Path(GATE_FILE).touch()
    last_lag = wait_for_lag(page, lambda lag: lag < peak_lag, f"lag never fell below {peak_lag}")
    rates = series(page, "#chart-rates")
    delivered = next((s["points"] for s in rates if s["name"] == "delivered"), [])
    peak_rate = max([0.0] + [p[1] for p in delivered])
    assert peak_rate > 0, f"records/s never rose: {rates}"
    step(f"records/s peaked at {peak_rate:.0f}, lag fell from {peak_lag} to {last_lag}")
    shot(page, "pipe")


def wait_for_lag(page, wanted, failure):
    """The lag chart's latest total once `wanted` holds for it."""
    deadline = time.time() + WAIT_MS / 1000
    lags = []
    while time.time() < deadline:
        lags = series(page, "#chart-lag")
        latest = [s["points"][-1][1] for s in lags if s["points"]]
        if latest and wanted(sum(latest)):
            return sum(latest)
        time.sleep(0.5)
    raise AssertionError(f"{failure}: {lags}")


def stop_and_start(page):
    step("stop and start from the Pipe page")
    page.goto(CONSOLE + "#/pipe/orders")
    page.once("dialog", lambda d: d.accept())
    page.get_by_role("button", name="Stop").click()
    expect(page.locator("#current-state")).to_have_text("STOPPED", timeout=WAIT_MS)
    page.get_by_role("button", name="Start").click()
    expect(page.locator("#current-state")).to_have_text("RUNNING", timeout=WAIT_MS)


def api(page, method, path, body=None):
    """A call as the page makes it, with the session's CSRF token."""
    return page.evaluate(
        """async ([method, path, body]) => {
            const s = await (await fetch("/console/api/session")).json();
            const r = await fetch("/console/api/" + path, {method, body: body && JSON.stringify(body),
                headers: {"X-CSRF-Token": s.CsrfToken, "Content-Type": "application/json"}});
            return [r.status, await r.json()];
        }""",
        [method, path, body],
    )


def pipe_body(topic, desired="RUNNING"):
    return {
        "Source": f"smk://{BOOTSTRAP}", "Target": TARGET, "DesiredState": desired,
        "RoleArn": "arn:aws:iam::123456789012:role/sluice",
        "SourceParameters": {"SelfManagedKafkaParameters": {"TopicName": topic}},
    }


def missing_topic(page):
    step("a pipe whose topic is missing shows its StateReason on the Pipes page")
    status, body = api(page, "POST", "v1/pipes/lost", pipe_body("no-such-topic"))
    assert status == 200, body
    page.goto(CONSOLE + "#/pipes")
    reason = page.locator('#pipes tr[data-pipe="lost"] td.reason')
    expect(reason).to_contain_text("does not exist", timeout=WAIT_MS)
    shot(page, "pipes")


def execution_errors(page):
    step("the Pipe page shows the last execution errors, or why there are none")
    page.goto(CONSOLE + "#/pipe/orders")
    expect(page.locator("#last-errors-empty")).to_have_text("No execution errors (execution logs are off).")
    body = pipe_body(FAILING_TOPIC)
    body["Target"] = FAILING_TARGET
    body["SourceParameters"]["SelfManagedKafkaParameters"]["StartingPosition"] = "TRIM_HORIZON"
    body["LogConfiguration"] = {"Level": "ERROR"}
    body["SluiceParameters"] = {"LogDestination": f"file://{LOG_FILE}", "MaximumRetryBackoffSeconds": 1}
    status, got = api(page, "POST", "v1/pipes/failing", body)
    assert status == 200, got
    page.goto(CONSOLE + "#/pipe/failing")
    expect(page.locator("#last-errors-empty")).to_have_text(
        "No execution errors recently (on this instance).", timeout=WAIT_MS)
    producer = Producer({"bootstrap.servers": BOOTSTRAP})
    producer.produce(FAILING_TOPIC, key="k", value=json.dumps({"kind": "order", "id": "F1"}))
    producer.flush(30)
    row = page.locator('#last-errors-table tr[data-step="TargetInvocationFailed"]').first
    expect(row.locator("td.status")).to_have_text("500", timeout=WAIT_MS)
    expect(row.locator("td.message")).not_to_be_empty()
    status, got = api(page, "GET", "pipes/failing")
    assert status == 200, got
    errors = got["LastErrors"]
    assert errors and got["ExecutionLogs"] is True, got
    for e in errors:
        assert set(e) == {"timestamp", "messageType", "executionId", "error"}, e
    assert "F1" not in json.dumps(errors), "a payload reached the console's errors"
    steps = {e["messageType"] for e in errors}
    step(f"{len(errors)} errors shown: {sorted(steps)}")
    shot(page, "pipe-errors")
    status, got = api(page, "POST", "v1/pipes/failing/stop")
    assert status == 200, got


def two_hundred_pipes(page):
    step("the Pipes page with 200 pipes")
    for chunk in range(0, 200, 20):
        results = page.evaluate(
            """async ([names, body]) => {
                const s = await (await fetch("/console/api/session")).json();
                return Promise.all(names.map((n) => fetch("/console/api/v1/pipes/" + n, {method: "POST",
                    body: JSON.stringify(body), headers: {"X-CSRF-Token": s.CsrfToken}}).then((r) => r.status)));
            }""",
            [[f"bulk-{i:03}" for i in range(chunk, chunk + 20)], pipe_body(TOPIC, "STOPPED")],
        )
        assert all(r == 200 for r in results), results
    start = time.perf_counter()
    page.goto(CONSOLE + "#/pipes")
    page.reload()
    expect(page.locator("#pipes tbody tr")).to_have_count(203, timeout=WAIT_MS)
    load_ms = (time.perf_counter() - start) * 1000
    first = page.locator("#page").get_attribute("data-updated")
    expect(page.locator("#page")).not_to_have_attribute("data-updated", first or "")
    update_ms = float(page.locator("#page").get_attribute("data-update-ms"))
    print(f"console test: 200-pipe Pipes page: load {load_ms:.0f} ms, one update {update_ms:.0f} ms",
          flush=True)
    with open(os.path.join(SHOTS, "timing.txt"), "w") as f:
        f.write(f"load_ms={load_ms:.0f} update_ms={update_ms:.0f}\n")


def instances(page):
    step("the Instances page: this instance's heartbeat and the partitions it owns")
    page.goto(CONSOLE + "#/instances")
    expect(page.locator("#instances tbody tr")).to_have_count(1)
    status, got = api(page, "GET", "instances")
    assert status == 200, got
    [me] = got["Instances"]
    assert me["This"] is True and 0 <= me["HeartbeatAgeMs"] < 15_000, me
    orders = next(p for p in me["Pipes"] if p["Pipe"] == "orders")
    assert orders["Phase"] == "RUNNING" and orders["Partitions"] == [0], orders
    row = page.locator("#instances tbody tr").first
    expect(row.locator("td.heartbeat")).to_contain_text("s ago")
    expect(row.locator('li[data-pipe="orders"] .partitions')).to_have_text("0")
    shot(page, "instances")


def main():
    with sync_playwright() as p:
        # No blanket ignore_https_errors: Chromium accepts the one certificate of this pin.
        args = ["--no-sandbox", f"--ignore-certificate-errors-spki-list={SPKI_PIN}"]
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=args)
        context = browser.new_context(viewport={"width": 1280, "height": 800})
        nothing_without_a_session(context.request)
        page = context.new_page()
        page.set_default_timeout(30_000)
        outside = []
        page.on("request", lambda r: r.url.startswith(URL) or r.url.startswith("data:") or outside.append(r.url))
        sign_in(page)
        csrf_is_required(page)
        create_from_the_page(page)
        validation_messages(page)
        figures_move(page)
        stop_and_start(page)
        missing_topic(page)
        execution_errors(page)
        instances(page)
        two_hundred_pipes(page)
        assert not outside, f"requests left the machine: {outside}"
        browser.close()
    step("all passed")


if __name__ == "__main__":
    main()
