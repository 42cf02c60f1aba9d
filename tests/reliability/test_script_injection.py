"""Row 4: class names that are scripts stay text, in a real Chromium, and every page has a CSP."""

import pytest
import requests
from relhelp import Watcher, record

pytestmark = pytest.mark.reliability

TEMPLATES = [
    "<script>__xss={n}</script>",
    "<img src=x onerror=__xss={n}>",
    "<svg onload=__xss={n}>",
    '"><img src=x onerror=alert({n})>',
    "'><svg/onload=alert({n})>",
    "javascript:__xss={n}",
    "<iframe src=javascript:alert({n})>",
    "<a href=javascript:alert({n})>x{n}</a>",
    "${{__xss={n}}}{{{{__xss={n}}}}}",
    "<details open ontoggle=__xss={n}>",
]
PAYLOADS = [TEMPLATES[n % len(TEMPLATES)].format(n=n) for n in range(50)]
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def test_script_class_names_never_run(server):
    assert all(len(p) <= 40 for p in PAYLOADS)
    client = Watcher(server.url)
    try:
        socket_answers = [
            client.sio.call("add_class", {"name": p}, timeout=15) for p in PAYLOADS[:25]
        ]
    finally:
        client.close()
    rest_answers = [
        requests.post(server.url + "/api/classes", json={"name": p}, timeout=10)
        for p in PAYLOADS[25:]
    ]
    assert all(a["ok"] for a in socket_answers), socket_answers
    assert all(a.status_code == 201 for a in rest_answers)
    names = {
        c["name"] for c in requests.get(server.url + "/api/state", timeout=10).json()["classes"]
    }
    assert names == set(PAYLOADS)  # stored as given, as text

    from playwright.sync_api import sync_playwright

    dialogs, violations, shown = [], [], {}
    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path="/usr/bin/chromium", headless=True, args=CHROMIUM_ARGS
        )
        try:
            page = browser.new_page()
            page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
            page.on(
                "console",
                lambda m: (
                    violations.append(m.text) if "Content Security Policy" in m.text else None
                ),
            )
            for path in ("/", "/operator"):
                page.goto(server.url + path, wait_until="load", timeout=20_000)
                page.wait_for_timeout(3000)  # the socket connects and the classes render
                shown[path] = {
                    "xss": page.evaluate("() => window.__xss ?? null"),
                    "text_has_payload": page.evaluate(
                        "(p) => document.body.innerText.includes(p)", PAYLOADS[0]
                    ),
                    "injected_nodes": page.evaluate(
                        "() => document.querySelectorAll("
                        '\'body img[src="x"], body svg[onload], body iframe[src^=javascript],'
                        " body details[ontoggle], body a[href^=javascript]').length"
                    ),
                }
        finally:
            browser.close()
    record("4 script injection", pages=shown, dialogs=len(dialogs), csp_violations=len(violations))
    assert dialogs == []
    assert all(v["xss"] is None and v["injected_nodes"] == 0 for v in shown.values())
    assert shown["/"]["text_has_payload"]  # the names were rendered, as text


def test_every_page_sends_a_content_security_policy(server):
    policies = {
        path: requests.get(server.url + path, timeout=10).headers.get("Content-Security-Policy")
        for path in ("/", "/operator", "/api/state", "/no-such-page", "/api/no-such-thing")
    }
    record("4 CSP", policies={p: bool(v and "script-src 'self'" in v) for p, v in policies.items()})
    for policy in policies.values():
        assert policy and "script-src 'self'" in policy
        assert "unsafe-inline" not in policy.split("script-src")[1].split(";")[0]
