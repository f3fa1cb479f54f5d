"""The drawing page in real headless Chromium: draw a stroke, see a prediction.

Needs Debian's `chromium` (or ABLATE_CHROMIUM); Playwright drives it (no browser
download). Without one these tests are skipped (see tests/conftest.py).
"""

import math
import time
from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser, Page, Route, sync_playwright

pytestmark = pytest.mark.browser

ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]


@pytest.fixture(scope="module")
def browser(chromium: str) -> Iterator[Browser]:
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=chromium, args=ARGS, headless=True)
        yield b
        b.close()


def open_page(browser: Browser, url: str, **context: object
              ) -> tuple[Page, list[str], list[str]]:
    ctx = browser.new_context(viewport={"width": 900, "height": 800}, **context)  # type: ignore[arg-type]
    page = ctx.new_page()
    requested: list[str] = []
    page.on("request", lambda r: requested.append(r.url))
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.goto(url + "/")
    wait_until(page, "document.getElementById('m-study').textContent !== '…'")
    assert not errors, errors  # a Content-Security-Policy violation is a console error
    return page, requested, errors


def wait_until(page: Page, expression: str, timeout_s: float = 30.0) -> None:
    """Poll `expression` from outside the page: Playwright's wait_for_function polls by
    evaluating a string inside the page, which its Content-Security-Policy forbids."""
    deadline = time.monotonic() + timeout_s
    while not page.evaluate(expression):
        assert time.monotonic() < deadline, f"timed out waiting for {expression}"
        page.wait_for_timeout(50)


def settled(page: Page) -> None:
    """Wait until the page shows the answer for the whole drawing (none in flight)."""
    wait_until(page, "Number(document.body.dataset.predictions || 0) > 0 "
                     "&& document.body.dataset.busy === '0'")


def predictions(page: Page) -> int:
    return int(page.evaluate("Number(document.body.dataset.predictions || 0)"))


def shown(page: Page) -> tuple[str, list[float]]:
    digit = page.locator("#digit").inner_text()
    probs = [float(p) for p in page.eval_on_selector_all(
        "#bars li", "lis => lis.map(li => li.dataset.p)")]
    return digit, probs


def test_draw_a_one_with_the_mouse(browser: Browser, live_server: str,
                                   tmp_path_factory: pytest.TempPathFactory) -> None:
    page, requested, errors = open_page(browser, live_server)
    assert page.locator("#m-study").inner_text() == "dropout"
    assert page.locator("#m-arm").inner_text().startswith("dropout=")
    assert page.locator("#m-val").inner_text().endswith("%")
    box = page.locator("#pad").bounding_box()
    assert box is not None
    x = box["x"] + box["width"] * 0.5
    page.mouse.move(x, box["y"] + box["height"] * 0.15)
    page.mouse.down()
    for i in range(1, 21):  # a vertical stroke, top to bottom: a "1"
        page.mouse.move(x + i * 0.3, box["y"] + box["height"] * (0.15 + 0.035 * i))
    page.mouse.up()
    settled(page)
    digit, probs = shown(page)
    assert len(probs) == 10 and abs(sum(probs) - 1) < 1e-3
    assert digit == str(max(range(10), key=lambda d: probs[d]))
    assert digit == "1", probs  # the model reads a plain vertical stroke as a one
    page.screenshot(path=str(tmp_path_factory.mktemp("page") / "draw.png"))
    # Everything came from this server: the page works offline.
    assert requested and all(u.startswith(live_server) for u in requested), requested
    page.locator("#clear").click()
    assert page.locator("#digit").inner_text() == "?"
    assert not errors, errors  # nothing the page did broke its Content-Security-Policy


def test_draw_with_a_finger(browser: Browser, live_server: str) -> None:
    page, _, errors = open_page(browser, live_server, has_touch=True, is_mobile=True)
    box = page.locator("#pad").bounding_box()
    assert box is not None
    cdp = page.context.new_cdp_session(page)
    cx, cy, r = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2, box["width"] * 0.3
    ring = [(cx + r * 0.7 * math.sin(2 * math.pi * k / 24), cy - r * math.cos(2 * math.pi * k / 24))
            for k in range(25)]  # an upright ellipse: a "0"
    cdp.send("Input.dispatchTouchEvent", {"type": "touchStart",
                                          "touchPoints": [{"x": ring[0][0], "y": ring[0][1]}]})
    for px, py in ring[1:]:
        cdp.send("Input.dispatchTouchEvent", {"type": "touchMove",
                                              "touchPoints": [{"x": px, "y": py}]})
    cdp.send("Input.dispatchTouchEvent", {"type": "touchEnd", "touchPoints": []})
    settled(page)
    digit, probs = shown(page)
    assert digit in "0123456789" and len(digit) == 1 and len(probs) == 10
    assert predictions(page) >= 1
    assert not errors, errors


def test_a_busy_server_is_asked_again(browser: Browser, live_server: str) -> None:
    """The first prediction is answered 503 + Retry-After: 1 (as the decode pool does
    when every worker is busy): the page sends nothing for that second, however much
    one draws, then asks again and shows the real answer for the drawing."""
    page, _, errors = open_page(browser, live_server)
    sent: list[tuple[float, bool]] = []  # (when, refused)

    def busy_once(route: Route) -> None:
        refuse = not sent
        sent.append((time.monotonic(), refuse))
        if not refuse:
            route.continue_()
            return
        route.fulfill(status=503, headers={"Retry-After": "1"}, content_type="application/json",
                      body='{"error": "the server is busy decoding other images; retry shortly"}')

    page.route("**/v1/predict", busy_once)
    box = page.locator("#pad").bounding_box()
    assert box is not None
    x = box["x"] + box["width"] * 0.5
    page.mouse.move(x, box["y"] + box["height"] * 0.2)
    page.mouse.down()
    for i in range(1, 11):  # drawing on while the page waits
        page.mouse.move(x, box["y"] + box["height"] * (0.2 + 0.06 * i))
        page.wait_for_timeout(50)
    page.mouse.up()
    settled(page)
    assert sent[0][1] and len(sent) >= 2
    assert sent[1][0] - sent[0][0] >= 0.9  # Retry-After was honoured
    assert predictions(page) >= 1 and page.locator("#status").inner_text() == ""
    digit = page.locator("#digit").inner_text()
    assert len(digit) == 1 and digit in "0123456789"
    # The 503 itself is logged as a failed resource by the browser; nothing else is.
    assert all("503" in e for e in errors), errors
