"""A customer completes a checkout on the demo storefront page, in a real Chromium."""

from __future__ import annotations

import pytest
from django.core.management import call_command
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as ec
from selenium.webdriver.support.ui import Select, WebDriverWait

from checkout.models import Order
from payments.models import IdempotencyKey

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
