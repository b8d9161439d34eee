"""An operator's day in the back office, in a real Chromium: the dashboard, finding an order
by email and date range, a partial capture, two refunds with a Back-and-resubmit between
them that makes no third, a refund refused on its form, a cancel, a bulk capture, a CSV
export; then a Viewer, who sees the same pages without a single money action."""

from __future__ import annotations

import pytest
from django.core.management import call_command
from django.utils import timezone
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as ec
from selenium.webdriver.support.ui import Select, WebDriverWait

from checkout.models import Order, Product, Region
from payments.models import Payment, Refund
from tests.backoffice import place_order

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

PASSWORD = "browser-test-password"


def fill(browser, name: str, value: str) -> None:  # type: ignore[no-untyped-def]
    field = browser.find_element(By.NAME, name)
    field.clear()
    field.send_keys(value)


def log_in(browser, live_server, username: str) -> None:  # type: ignore[no-untyped-def]
    browser.delete_all_cookies()
    browser.get(live_server.url + "/admin/login/")
    fill(browser, "username", username)
    fill(browser, "password", PASSWORD)
    browser.find_element(By.CSS_SELECTOR, "#login-form [type=submit]").click()
    WebDriverWait(browser, 10).until(lambda b: "/login/" not in b.current_url)


def press(browser, css: str) -> None:  # type: ignore[no-untyped-def]
    """Click what the theme's sticky footer may cover: scrolled to the middle first."""
    element = WebDriverWait(browser, 10).until(
        ec.presence_of_element_located((By.CSS_SELECTOR, css))
    )
    browser.execute_script("arguments[0].scrollIntoView({block: 'center'})", element)
    element.click()


def page_says(browser, text: str):  # type: ignore[no-untyped-def]
    return WebDriverWait(browser, 10).until(
        ec.text_to_be_present_in_element((By.TAG_NAME, "body"), text)
    )


def test_an_operators_day(live_server, browser, screenshot):
    call_command("seed_demo", force=True, password=PASSWORD, verbosity=0)
    europe = Region.objects.get(name="Europe")
    shirt = Product.objects.get(sku="SHIRT-LINEN")
    mine = place_order(region=europe, items=[(shirt, 2)], email="ada@example.com")["id"]
    other = place_order(region=europe, items=[(shirt, 1)], email="bob@example.com")["id"]
    third = place_order(region=europe, items=[(shirt, 1)], email="cy@example.com")["id"]
    wait = WebDriverWait(browser, 10)

    log_in(browser, live_server, "clerk")  # the Operator group's login, not a superuser
    browser.get(live_server.url + "/admin/")
    wait.until(ec.presence_of_element_located((By.ID, "dashboard")))
    assert "3 payments" in browser.find_element(By.ID, "card-awaiting").text
    assert "€180.00" in browser.find_element(By.ID, "card-awaiting").text
    screenshot("backoffice-1-dashboard")

    # Find the order by its customer's email and today's date.
    today = timezone.localdate().isoformat()
    browser.get(
        f"{live_server.url}/admin/checkout/order/?q=ada%40example.com"
        f"&created_at_from={today}&created_at_to={today}"
    )
    wait.until(ec.presence_of_element_located((By.LINK_TEXT, mine)))
    assert other not in browser.find_element(By.ID, "result_list").text
    assert "€90.00" in browser.find_element(By.ID, "list-totals").text
    screenshot("backoffice-2-orders")
    browser.find_element(By.LINK_TEXT, mine).click()

    # Capture part of it: the page says what the rest releases, before and after.
    press(browser, "a[id^=capture-]")
    assert browser.find_element(By.NAME, "amount").get_attribute("value") == "90.00"
    fill(browser, "amount", "60.00")
    page_says(browser, "Capturing €60.00 releases €30.00.")
    screenshot("backoffice-3-capture")
    press(browser, "#confirm")
    page_says(browser, "Captured €60.00")
    assert "released €30.00 of the authorization" in browser.find_element(By.TAG_NAME, "body").text

    # A refund, then Back to its page and submit again: no second refund of the same sum.
    press(browser, "a[id^=refund-]")
    fill(browser, "amount", "15.00")
    Select(browser.find_element(By.NAME, "reason")).select_by_value("return")
    fill(browser, "note", "One shirt came back")
    press(browser, "#confirm")
    page_says(browser, "Refunded €15.00")
    browser.back()
    wait.until(ec.presence_of_element_located((By.ID, "money-action-form")))
    fill(browser, "amount", "15.00")
    press(browser, "#confirm")
    wait.until(
        lambda b: (
            b.find_elements(By.ID, "repeat-warning")
            or "already done by this page earlier" in b.find_element(By.TAG_NAME, "body").text
        )
    )
    screenshot("backoffice-4-back-and-resubmit")
    assert [r.amount for r in Refund.objects.all()] == [1500]

    # A second, different refund; then one over what is left stays on its form.
    browser.get(live_server.url + f"/admin/checkout/order/{mine}/change/")
    press(browser, "a[id^=refund-]")
    fill(browser, "amount", "10.00")
    press(browser, "#confirm")
    page_says(browser, "Refunded €10.00")
    press(browser, "a[id^=refund-]")
    fill(browser, "amount", "100")
    fill(browser, "note", "Whole order back")
    press(browser, "#confirm")
    page_says(browser, "At most €35.00 can be refunded.")
    assert browser.find_element(By.NAME, "note").get_attribute("value") == "Whole order back"
    screenshot("backoffice-5-refund-error")
    assert sorted(r.amount for r in Refund.objects.all()) == [1000, 1500]

    browser.get(live_server.url + f"/admin/checkout/order/{mine}/change/")
    timeline = browser.find_element(By.ID, "timeline").text
    assert "Rest of the authorization released" in timeline and "€30.00" in timeline
    assert "UTC" in timeline and "clerk" in timeline
    assert "Refunded €10.00" in browser.find_element(By.ID, "history-module").text
    assert "Linen shirt" in browser.find_element(By.ID, "items-module").text
    browser.execute_script("document.getElementById('items-module').scrollIntoView()")
    screenshot("backoffice-6-order")

    # Cancel another order's authorization.
    browser.get(live_server.url + f"/admin/checkout/order/{other}/change/")
    press(browser, "a[id^=cancel-]")
    page_says(browser, "releases the whole authorization of €45.00")
    press(browser, "#confirm")
    page_says(browser, "released €45.00")
    assert Payment.objects.get(order_id=other).canceled_at is not None

    # Bulk capture: the canceled order is flagged, the third captured, amounts reported.
    browser.get(live_server.url + "/admin/checkout/order/")
    for order_id in (other, third):
        browser.find_element(By.CSS_SELECTOR, f"input.action-select[value='{order_id}']").click()
    Select(browser.find_element(By.NAME, "action")).select_by_value("capture_orders")
    press(browser, "button[name=index]")
    screenshot("backoffice-7-bulk-capture")
    page_says(browser, "Cannot be captured: No live payment")
    assert browser.find_element(By.ID, "confirm").get_attribute("value") == "Yes, capture €45.00"
    screenshot("backoffice-7-bulk-capture")
    press(browser, "#confirm")
    page_says(browser, "Captured 1 order: €45.00; 1 could not be captured.")
    assert Payment.objects.get(order_id=third).amount_captured == 4500

    # Export the filtered orders as CSV, with the operator's session.
    browser.get(f"{live_server.url}/admin/checkout/order/?q=ada%40example.com")
    href = browser.find_element(By.ID, "export-csv").get_attribute("href")
    csv = browser.execute_async_script(
        "fetch(arguments[0]).then(r => r.text()).then(arguments[arguments.length - 1]);", href
    )
    lines = csv.strip().splitlines()
    assert lines[0].startswith("id,placed_at,email") and len(lines) == 2
    assert mine in lines[1] and "€90.00" in lines[1] and "€60.00" in lines[1]

    # A Viewer reads the same pages and is offered no money action anywhere.
    log_in(browser, live_server, "viewer")
    browser.get(live_server.url + f"/admin/checkout/order/{third}/change/")
    wait.until(ec.presence_of_element_located((By.ID, "payments-module")))
    assert not browser.find_elements(By.CSS_SELECTOR, "#payments-module a.bo-button")
    payment = Payment.objects.get(order_id=third)
    browser.get(live_server.url + f"/admin/payments/payment/{payment.pk}/change/")
    wait.until(ec.presence_of_element_located((By.ID, "content-main")))
    assert not browser.find_elements(By.ID, "payment-money-actions")
    browser.get(live_server.url + "/admin/checkout/order/")
    assert not browser.find_elements(By.CSS_SELECTOR, "input.action-select")
    screenshot("backoffice-8-viewer")
    assert Order.objects.get(pk=mine).payment_status == "partially_refunded"
