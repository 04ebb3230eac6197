/*
 * Tally test/demo extension of localstripe's fake Stripe.js (see devtools/localstripe_ext).
 *
 * Appended to localstripe-v3.js and served with it at /js.stripe.com/tally/v3.js, so it
 * shares that script's LOCALSTRIPE_BASE_API (the script's origin), Element and openModal.
 * Stripe(key) still returns localstripe's object, with these methods replaced so that
 * they resolve to what real Stripe.js resolves to:
 *
 *   confirmCardPayment(clientSecret, {payment_method: {card: element, billing_details}})
 *   confirmCardPayment(clientSecret, {payment_method: 'pm_...'})
 *   confirmCardPayment(clientSecret)   // the PaymentIntent already has a payment method
 *   confirmCardSetup(clientSecret, {payment_method: {card: element, billing_details} | 'pm_...'})
 *   createPaymentMethod({type: 'card', card: element, billing_details})
 *
 * Success: {paymentIntent} / {setupIntent} / {paymentMethod}. Failure: {error} with
 * type 'validation_error' (incomplete card, no request made), 'card_error'
 * (card_declined), or 'invalid_request_error' (payment_intent_authentication_failure,
 * setup_intent_authentication_failure, ...). Cards that need 3-D Secure show localstripe's
 * modal ("Complete authentication" / "Fail authentication").
 */
(function () {
  'use strict';

  const localStripe = window.Stripe;
  const EXT_API = `${LOCALSTRIPE_BASE_API}/js.stripe.com/tally`;
  const SUCCEEDED = ['succeeded', 'processing', 'requires_capture'];
  const AUTH_FAILED = 'We are unable to authenticate your payment method. ' +
                      'Please choose a different payment method and try again.';

  function invalid(code, message) {
    return {error: {type: 'validation_error', code, message}};
  }

  function luhn(number) {
    let sum = 0;
    for (let i = 0; i < number.length; i++) {
      let digit = Number(number[number.length - 1 - i]);
      if (i % 2) digit = digit * 2 > 9 ? digit * 2 - 9 : digit * 2;
      sum += digit;
    }
    return sum % 10 === 0;
  }

  // What Stripe.js checks in the card element before making any request.
  function cardValues(element) {
    const v = (element && element.value && element.value.card) || {};
    const number = String(v.number || '').replace(/\s/g, '');
    const month = String(v.exp_month || '').trim();
    let year = String(v.exp_year || '').trim();  // localstripe prefixes '20' to the input
    if (/^20\d{4}$/.test(year)) year = year.slice(2);
    const cvc = String(v.cvc || '').trim();
    const now = new Date();
    if (/^\d{0,15}$/.test(number)) {
      return invalid('incomplete_number', 'Your card number is incomplete.');
    }
    if (!/^\d{16}$/.test(number) || !luhn(number)) {
      return invalid('invalid_number', 'Your card number is invalid.');
    }
    if (!/^\d{1,2}$/.test(month) || !/^\d{4}$/.test(year)) {
      return invalid('incomplete_expiry', "Your card's expiration date is incomplete.");
    }
    if (Number(month) < 1 || Number(month) > 12) {
      return invalid('invalid_expiry_month', "Your card's expiration month is invalid.");
    }
    if (Number(year) < now.getFullYear()) {
      return invalid('invalid_expiry_year_past', "Your card's expiration year is in the past.");
    }
    if (Number(year) === now.getFullYear() && Number(month) < now.getMonth() + 1) {
      return invalid('invalid_expiry_month_past', "Your card's expiration date is in the past.");
    }
    if (!/^\d{3}$/.test(cvc)) {
      return invalid('incomplete_cvc', "Your card's security code is incomplete.");
    }
    return {card: {number, exp_month: Number(month), exp_year: Number(year), cvc}};
  }

  // {card: element, billing_details} or 'pm_...' -> request fields, or {error}.
  function paymentMethodFields(paymentMethod) {
    if (typeof paymentMethod === 'string') {
      return {fields: {payment_method: paymentMethod}};
    }
    const values = cardValues(paymentMethod.card);
    if (values.error) return values;
    const billing = Object.assign({}, paymentMethod.billing_details);
    const postalCode = paymentMethod.card.value.postal_code;
    if (postalCode) billing.address = Object.assign({postal_code: postalCode}, billing.address);
    return {fields: {payment_method_data: {
      type: 'card', card: values.card, billing_details: billing,
    }}};
  }

  // No Content-Type header: a text/plain POST needs no CORS preflight, which
  // localstripe does not answer. It parses the JSON body anyway.
  async function post(url, body) {
    try {
      const response = await fetch(url, {method: 'POST', body: JSON.stringify(body)});
      const json = await response.json().catch(() => ({}));
      if (!response.ok || json.error) {
        return {error: Object.assign(
          {type: 'api_error', message: `localstripe answered ${response.status}`}, json.error)};
      }
      return {object: json};
    } catch (err) {
      return {error: {type: 'api_connection_error', message: String((err && err.message) || err)}};
    }
  }

  function intentId(clientSecret, prefix, method) {
    const match = new RegExp(`^(${prefix}_\\w+)_secret_`).exec(clientSecret || '');
    if (!match) {
      throw new Error(`Invalid value for ${method} intentSecret: ` +
                      'value should be a client_secret string.');
    }
    return match[1];
  }

  // The intent endpoints: confirm, then the 3-D Secure modal if the card asks for it.
  async function confirmIntent(apiKey, clientSecret, data, confirmUrl, authenticateUrl) {
    const body = {key: apiKey, client_secret: clientSecret};
    if (data && data.payment_method) {
      const pm = paymentMethodFields(data.payment_method);
      if (pm.error) return pm;
      Object.assign(body, pm.fields);
    }
    let result = await post(confirmUrl, body);
    if (result.error || result.object.status !== 'requires_action') return result;
    const success = await openModal('3D Secure\nDo you want to confirm or cancel?',
                                    'Complete authentication', 'Fail authentication');
    result = await post(`${authenticateUrl}?success=${success}`,
                        {key: apiKey, client_secret: clientSecret});
    return result;
  }

  async function confirmCardPayment(apiKey, clientSecret, data) {
    const id = intentId(clientSecret, 'pi', 'confirmCardPayment');
    const result = await confirmIntent(
      apiKey, clientSecret, data, `${EXT_API}/payment_intents/${id}/confirm`,
      `${LOCALSTRIPE_BASE_API}/v1/payment_intents/${id}/_authenticate`);
    if (result.error) return result;
    const pi = result.object;
    if (SUCCEEDED.includes(pi.status)) return {paymentIntent: pi};
    const failure = pi.last_payment_error || {};
    if (failure.code === 'payment_intent_authentication_failure') {
      return {error: {type: 'invalid_request_error', code: failure.code,
                      message: AUTH_FAILED, payment_intent: pi}};
    }
    return {error: {type: 'invalid_request_error', payment_intent: pi,
                    message: `The PaymentIntent has status ${pi.status}.`}};
  }

  async function confirmCardSetup(apiKey, clientSecret, data) {
    const id = intentId(clientSecret, 'seti', 'confirmCardSetup');
    const result = await confirmIntent(
      apiKey, clientSecret, data, `${EXT_API}/setup_intents/${id}/confirm`,
      `${EXT_API}/setup_intents/${id}/_authenticate`);
    if (result.error) return result;
    const seti = result.object;
    if (seti.status === 'succeeded') return {setupIntent: seti};
    const failure = seti.last_setup_error || {};
    return {error: {type: failure.type || 'invalid_request_error', code: failure.code,
                    message: failure.message || `The SetupIntent has status ${seti.status}.`,
                    setup_intent: seti}};
  }

  // Also accepts Stripe.js's older form createPaymentMethod('card', element, data).
  async function createPaymentMethod(apiKey, params, element, data) {
    if (typeof params === 'string') params = Object.assign({type: params, card: element}, data);
    if (!params || params.type !== 'card') {
      throw new Error('localstripe-ext: createPaymentMethod supports type "card" only.');
    }
    const pm = paymentMethodFields(params);
    if (pm.error) return pm;
    const body = Object.assign({key: apiKey}, pm.fields.payment_method_data);
    if (params.metadata) body.metadata = params.metadata;
    const result = await post(`${EXT_API}/payment_methods`, body);
    return result.error ? result : {paymentMethod: result.object};
  }

  window.Stripe = function Stripe(apiKey, options) {
    const stripe = localStripe(apiKey, options);
    stripe.confirmCardPayment = (secret, data) => confirmCardPayment(apiKey, secret, data);
    stripe.confirmCardSetup = (secret, data) => confirmCardSetup(apiKey, secret, data);
    stripe.createPaymentMethod =
      (params, element, data) => createPaymentMethod(apiKey, params, element, data);
    return stripe;
  };
  window.Stripe.localstripeExtension = 'tally';

  console.log('localstripe-ext: confirmCardPayment, confirmCardSetup and ' +
              'createPaymentMethod now use the card element (Tally test extension).');
})();
