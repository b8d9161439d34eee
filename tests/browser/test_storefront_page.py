"""A customer completes a checkout on the demo storefront page, in a real Chromium."""

from __future__ import annotations

import re

import pytest
from django.core.management import call_command
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as ec
from selenium.webdriver.support.ui import Select, WebDriverWait

from checkout import services
from checkout.models import LineItem, Order
from payments.models import IdempotencyKey
from payments.money import format_money

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_a_customer_completes_a_checkout_on_the_demo_page(live_server, browser, screenshot):
    call_command("seed_demo", force=True, verbosity=0)
    wait = WebDriverWait(browser, 10)
    browser.get(live_server.url + "/")

    region = wait.until(ec.presence_of_element_located((By.CSS_SELECTOR, "#region option")))
    Select(browser.find_element(By.ID, "region")).select_by_visible_text("Europe (eur)")
    add_shirt = (By.CSS_SELECTOR, "button[data-product='SHIRT-LINEN']")
    wait.until(ec.text_to_be_present_in_element((By.ID, "products"), "€45.00"))
    browser.find_element(*add_shirt).click()
    wait.until(ec.text_to_be_present_in_element((By.ID, "total"), "€45.00"))
    browser.find_element(By.ID, "sessions-button").click()
    wait.until(ec.presence_of_element_located((By.CSS_SELECTOR, ".session[data-provider='test']")))
    browser.find_element(By.CSS_SELECTOR, ".session[data-provider='test'] button").click()
    wait.until(
        ec.presence_of_element_located((By.CSS_SELECTOR, ".session.selected[data-provider='test']"))
    )
    # The customer's card is declined first, then they choose a working outcome.
    Select(browser.find_element(By.ID, "test-outcome")).select_by_value("decline")
    wait.until(lambda b: not b.find_element(By.ID, "complete-button").get_attribute("disabled"))
    screenshot("storefront-1-cart")
    browser.find_element(By.ID, "key").send_keys("demo-key-1")
    browser.find_element(By.ID, "complete-button").click()
    wait.until(ec.text_to_be_present_in_element((By.ID, "answer"), "402"))
    screenshot("storefront-2-declined")
    Select(browser.find_element(By.ID, "test-outcome")).select_by_value("authorized")
    wait.until(
        ec.text_to_be_present_in_element(
            (By.CSS_SELECTOR, ".session[data-provider='test']"), "pending"
        )
    )
    browser.find_element(By.ID, "retry-button").click()
    wait.until(ec.text_to_be_present_in_element((By.ID, "answer"), "200 order"))
    screenshot("storefront-3-order")

    assert region is not None
    assert browser.find_element(By.ID, "returned-key").text == "demo-key-1"
    order = Order.objects.get()
    assert order.id in browser.find_element(By.ID, "order").text
    assert (order.total, order.currency_code) == (4500, "eur")
    assert IdempotencyKey.objects.get(key="demo-key-1").response_code == 200
    browser.find_element(By.ID, "retry-button").click()
    wait.until(ec.text_to_be_present_in_element((By.ID, "answer"), "(replayed)"))
    assert Order.objects.count() == 1


def test_a_customer_removes_an_item_and_reads_the_order_summary_in_currency(
    live_server, browser, screenshot
):
    call_command("seed_demo", force=True, verbosity=0)
    wait = WebDriverWait(browser, 10)
    browser.get(live_server.url + "/")
    wait.until(ec.presence_of_element_located((By.CSS_SELECTOR, "#region option")))
    Select(browser.find_element(By.ID, "region")).select_by_visible_text("United States (usd)")
    wait.until(ec.text_to_be_present_in_element((By.ID, "products"), "$12.00"))

    def add(sku: str, total: str) -> None:
        browser.find_element(By.CSS_SELECTOR, f"button[data-product='{sku}']").click()
        wait.until(ec.text_to_be_present_in_element((By.ID, "total"), total))

    def remove(title: str) -> None:
        browser.find_element(By.CSS_SELECTOR, f"button.remove[title='Remove {title}']").click()

    add("SOCKS-WOOL", "$12.00")
    add("TOTE-CANVAS", "$30.00")
    remove("Canvas tote")
    wait.until(ec.text_to_be_present_in_element((By.ID, "total"), "$12.00"))
    assert "Canvas tote" not in browser.find_element(By.ID, "items").text
    assert len(browser.find_elements(By.CSS_SELECTOR, "#items tr[data-item]")) == 1

    # Another tab removes the belt first: this tab's Remove is refused, and the customer reads
    # the API's message (not its JSON) and the cart as the server now has it.
    add("BELT-LEATHER", "$77.00")
    cart_id = browser.find_element(By.ID, "cart-id").text
    belt = LineItem.objects.get(cart_id=cart_id, title="Leather belt")
    services.line_item_delete(cart_id=cart_id, item_id=belt.id)
    remove("Leather belt")
    wait.until(ec.text_to_be_present_in_element((By.ID, "error"), "No such item in this cart."))
    assert "{" not in browser.find_element(By.ID, "error").text
    wait.until(ec.text_to_be_present_in_element((By.ID, "total"), "$12.00"))
    assert "Leather belt" not in browser.find_element(By.ID, "items").text

    browser.find_element(By.ID, "sessions-button").click()
    test_session = (By.CSS_SELECTOR, ".session[data-provider='test'] button")
    wait.until(ec.presence_of_element_located(test_session)).click()
    wait.until(lambda b: not b.find_element(By.ID, "complete-button").get_attribute("disabled"))
    assert browser.find_element(By.ID, "error").text == ""
    browser.find_element(By.ID, "complete-button").click()
    wait.until(ec.text_to_be_present_in_element((By.ID, "answer"), "200 order"))
    wait.until(ec.presence_of_element_located((By.ID, "order-total")))
    screenshot("storefront-4-summary")

    order = Order.objects.get()
    summary = browser.find_element(By.ID, "order").text
    assert (order.total, order.currency_code) == (1200, "usd")
    assert browser.find_element(By.ID, "order-id").text == order.id
    assert browser.find_element(By.ID, "order-total").text == "$12.00"
    assert browser.find_element(By.ID, "order-payment-status").text == "awaiting"
    items = [row.text for row in browser.find_elements(By.CSS_SELECTOR, "#order-items tbody tr")]
    assert items == ["Wool socks \u00d7 1 $12.00"]
    assert "{" not in summary and "}" not in summary and "1200" not in summary
    # A completed cart cannot be changed: no Remove buttons are left on it.
    assert browser.find_elements(By.CSS_SELECTOR, "button.remove") == []

    # The next purchase starts a new cart, and the last order's answer leaves the screen.
    add("TOTE-CANVAS", "$18.00")
    assert browser.find_element(By.ID, "cart-id").text != cart_id
    assert browser.find_element(By.ID, "order").text == "No order yet."
    assert browser.find_element(By.ID, "answer").text == "-"
    assert browser.find_element(By.ID, "returned-key").text == "-"
    assert browser.find_element(By.ID, "retry-button").get_attribute("disabled")


def test_the_page_formats_minor_units_by_each_currencys_exponent(live_server, browser):
    browser.get(live_server.url + "/")
    codes = ["usd", "eur", "jpy", "huf", "kwd"]
    formatted = browser.execute_script("return arguments[0].map((c) => money(1234, c));", codes)
    assert [text.replace("\xa0", " ") for text in formatted] == [
        "$12.34",
        "€12.34",
        "¥1,234",
        "HUF 1,234",
        "KWD 1.234",
    ]
    # The browser's exponents are the server's (payments.money, from Babel's CLDR data),
    # whatever the two put around the number.
    digits = [re.sub(r"[^0-9.,]", "", text) for text in formatted]
    assert digits == [re.sub(r"[^0-9.,]", "", format_money(1234, code)) for code in codes]
