"""An operator works in the back office, in a real Chromium."""

from __future__ import annotations

import pytest
from django.core.management import call_command
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as ec
from selenium.webdriver.support.ui import Select, WebDriverWait

from checkout.models import Order, Product, Region
from payments.models import Payment
from tests.backoffice import place_order

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

PASSWORD = "browser-test-password"


def fill(browser, name: str, value: str) -> None:  # type: ignore[no-untyped-def]
    field = browser.find_element(By.NAME, name)
    field.clear()
    field.send_keys(value)


def test_an_operator_enables_a_provider_captures_and_refunds_and_sees_the_timeline(
    live_server, browser, screenshot
):
    call_command("seed_demo", force=True, password=PASSWORD, verbosity=0)
    europe = Region.objects.get(name="Europe")
    europe.payment_providers.remove("manual")
    shirt = Product.objects.get(sku="SHIRT-LINEN")
    order_id = place_order(region=europe, items=[(shirt, 2)])["id"]
    wait = WebDriverWait(browser, 10)

    browser.get(live_server.url + "/admin/")
    fill(browser, "username", "operator")
    fill(browser, "password", PASSWORD)
    browser.find_element(By.CSS_SELECTOR, "input[type=submit]").click()
    wait.until(ec.presence_of_element_located((By.ID, "site-name")))

    # Enable `manual` again for Europe.
    browser.get(f"{live_server.url}/admin/checkout/region/{europe.pk}/change/")
    manual = browser.find_element(By.CSS_SELECTOR, "input[name=payment_providers][value=manual]")
    assert not manual.is_selected()
    manual.click()
    screenshot("backoffice-1-region")
    browser.find_element(By.NAME, "_save").click()
    wait.until(ec.presence_of_element_located((By.CSS_SELECTOR, ".messagelist .success")))
    assert set(europe.payment_providers.values_list("id", flat=True)) == {"manual", "test"}

    # Find the order by its customer's email.
    browser.get(f"{live_server.url}/admin/checkout/order/")
    fill(browser, "q", "customer@example.com")
    browser.find_element(By.CSS_SELECTOR, "#changelist-search input[type=submit]").click()
    wait.until(ec.presence_of_element_located((By.LINK_TEXT, order_id)))
    screenshot("backoffice-2-orders")
    browser.find_element(By.LINK_TEXT, order_id).click()

    # Capture part of it.
    wait.until(ec.element_to_be_clickable((By.CSS_SELECTOR, "a[id^=capture-]"))).click()
    assert browser.find_element(By.NAME, "amount").get_attribute("value") == "90.00"
    fill(browser, "amount", "60.00")
    screenshot("backoffice-3-capture")
    browser.find_element(By.ID, "confirm").click()
    wait.until(
        ec.text_to_be_present_in_element((By.CSS_SELECTOR, ".messagelist"), "Captured €60.00")
    )

    # Refund part of what was captured.
    browser.find_element(By.CSS_SELECTOR, "a[id^=refund-]").click()
    assert browser.find_element(By.NAME, "amount").get_attribute("value") == "60.00"
    fill(browser, "amount", "15.00")
    Select(browser.find_element(By.NAME, "reason")).select_by_value("return")
    fill(browser, "note", "One shirt came back")
    browser.find_element(By.ID, "confirm").click()
    wait.until(
        ec.text_to_be_present_in_element((By.CSS_SELECTOR, ".messagelist"), "Refunded €15.00")
    )

    timeline = browser.find_element(By.ID, "timeline").text
    browser.execute_script("document.getElementById('payments-module').scrollIntoView()")
    screenshot("backoffice-4-order-timeline")
    assert "Captured" in timeline and "Refunded" in timeline and "operator" in timeline
    assert "Payment authorized" in timeline and "Customer" in timeline
    assert "€60.00" in timeline and "€15.00" in timeline
    payment = Payment.objects.get(order_id=order_id)
    assert (payment.amount_captured, payment.amount_refunded) == (6000, 1500)
    assert Order.objects.get(pk=order_id).payment_status == "partially_refunded"
