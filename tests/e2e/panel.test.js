'use strict';
// End-to-end test of Postern's web panel: the real daemon on loopback, driven through
// Debian's Chromium with playwright-core, using the accessible names people and screen
// readers use. Plain Node: assert and playwright-core, no test runner.
//
//   POSTERN_BIN=build/postern node tests/e2e/panel.test.js
//
// Saves screenshots of the main screens to docs/screenshots/. Exits non-zero on failure.

const assert = require('node:assert/strict');
const crypto = require('node:crypto');
const fs = require('node:fs');
const http = require('node:http');
const net = require('node:net');
const path = require('node:path');
const { chromium } = require('playwright-core');
const { BIN, ROOT, PASSWORD, CHROMIUM_ARGS, Gateway, cli, until, withTimeout } = require('./harness.js');

const SHOTS = path.join(ROOT, 'docs', 'screenshots');
const WHOLE_TEST_MS = 360000;
const ACCOUNT = 'acme';
const ADMIN = 'admin@acme.test';
const MKT = 'mkt@acme.test';
const TECH = 'tech@acme.test';
const LOCKED = 'lock@acme.test';
const TECH_NEW_PASSWORD = 'tech team new password';
const SWITCH = { name: 'Authorized sender email ID' };
const MONITOR = { name: 'Monitor mode' };

const started = Date.now();
const results = [];
let gw = null;
let browser = null;
let failureShot = null;
let receiver = null;
let returnGw = null;
let overviewGw = null;

async function step(name, fn) {
  const t0 = Date.now();
  await fn();
  results.push(`ok   ${name} (${((Date.now() - t0) / 1000).toFixed(1)} s)`);
  console.log(results[results.length - 1]);
}

// --- Page helpers ---------------------------------------------------------------------

/** Fills the login form and submits it; resolves once the API has answered. */
async function logIn(page, email, password = PASSWORD, account = ACCOUNT) {
  await page.getByLabel('Account', { exact: true }).fill(account);
  await page.getByLabel('Email', { exact: true }).fill(email);
  await page.getByLabel('Password', { exact: true }).fill(password);
  await Promise.all([
    page.waitForResponse((r) => r.url().endsWith('/api/session') && r.request().method() === 'POST'),
    page.getByRole('button', { name: 'Log in', exact: true }).click(),
  ]);
}

async function logInToMailSettings(page, email, password = PASSWORD) {
  await page.goto(`${gw.base}/#/mail-settings`);
  await logIn(page, email, password);
  await page.getByRole('switch', SWITCH).waitFor();
  await page.getByRole('button', { name: 'Log out' }).waitFor();
}

async function logOut(page) {
  await page.getByRole('button', { name: 'Log out' }).click();
  await page.getByRole('button', { name: 'Log in', exact: true }).waitFor();
}

function senderRow(page, address) {
  return page.getByRole('table', { name: 'Senders' }).getByRole('row').filter({ hasText: address });
}

function preflightRow(page, address) {
  return page.getByRole('table', { name: 'Addresses that would be refused' }).getByRole('row').filter({ hasText: address });
}

/** Confirms the password dialog that is open with the right password. */
async function confirmPassword(page) {
  const dialog = page.getByRole('dialog');
  await dialog.getByLabel('Password', { exact: true }).fill(PASSWORD);
  await dialog.getByRole('button', { name: 'Confirm' }).click();
  await dialog.waitFor({ state: 'detached' });
}

/** The text of a sender's Status cell (the second column). */
async function senderStatus(page, address) {
  const row = senderRow(page, address);
  await row.waitFor();
  return (await row.getByRole('cell').nth(1).textContent()).trim();
}

async function switchState(page) {
  return page.getByRole('switch', SWITCH).getAttribute('aria-checked');
}

async function shot(page, name, options = {}) {
  await page.mouse.move(1, 1); // no hover highlight left on the last button clicked
  await page.evaluate(() => document.fonts && document.fonts.ready);
  await page.screenshot({ path: path.join(SHOTS, name), ...options });
}

async function send(from, key, to = 'bob@example.com', base = gw.base) {
  const res = await fetch(`${base}/v5/mail/send`, {
    method: 'POST',
    headers: { Authorization: `Bearer ${key}`, 'Content-Type': 'application/json' },
    body: JSON.stringify({
      from: { email: from },
      subject: 'Hi',
      content: [{ type: 'text/plain', value: 'Hello' }],
      personalizations: [{ to: [{ email: to }] }],
    }),
    signal: AbortSignal.timeout(15000),
  });
  return { status: res.status, policy: res.headers.get('x-postern-policy'), body: await res.json().catch(() => null) };
}

/**
 * Another user's browser: a new context (its own cookies) whose page is logged in as email
 * on Mail Settings. The caller closes `other` and sets failureShot back.
 */
async function loggedInElsewhere(email, problems) {
  const { ctx: other, p } = await openPage(problems);
  await logInToMailSettings(p, email);
  return { other, p };
}

/** A browser context of its own (its cookies) and its page, watched for script errors;
 * a failure's screenshot is taken of this page from now on. */
async function openPage(problems) {
  const ctx = await browser.newContext({ viewport: { width: 1280, height: 800 } });
  ctx.setDefaultTimeout(10000);
  const p = await ctx.newPage();
  watch(p, problems);
  failureShot = p;
  return { ctx, p };
}

/** Fails the test on script errors and CSP violations seen in any page. */
function watch(page, problems) {
  page.on('pageerror', (err) => problems.push(`page error: ${err.message}`));
  page.on('console', (msg) => {
    const text = msg.text();
    if (/Content Security Policy|Refused to (load|apply|execute|evaluate)/i.test(text)) problems.push(`CSP: ${text}`);
    // Chromium logs every 4xx answer to fetch; the scenario provokes several on purpose.
    else if (msg.type() === 'error' && !/Failed to load resource: the server responded with a status of 4\d\d/.test(text)) problems.push(`console error: ${text}`);
  });
}

// --- The scenario ---------------------------------------------------------------------

/** A session of email's over plain HTTP, for what a step sets up without the panel. */
async function apiSession(email, base = gw.base) {
  const login = await fetch(`${base}/api/session`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ account: ACCOUNT, email, password: PASSWORD }),
    signal: AbortSignal.timeout(15000),
  });
  assert.equal(login.status, 200);
  const cookie = login.headers.get('set-cookie').split(';')[0];
  const { csrf_token: csrf } = await login.json();
  return {
    async call(method, url, body) {
      const res = await fetch(`${base}${url}`, {
        method,
        headers: { Cookie: cookie, 'X-CSRF-Token': csrf, 'Content-Type': 'application/json' },
        body: body ? JSON.stringify(body) : undefined,
        signal: AbortSignal.timeout(15000),
      });
      return { status: res.status, body: await res.json().catch(() => null) };
    },
  };
}

async function run() {
  fs.mkdirSync(SHOTS, { recursive: true });
  assert.ok(fs.existsSync(BIN), `POSTERN_BIN ${BIN} does not exist; build first`);

  gw = new Gateway();
  let apiKey;
  await step('set up an account with the CLI (admin, marketing, technical, a verified domain, a key)', async () => {
    await cli(['init', '--db', gw.db, '--account', 'acme', '--admin', ADMIN]);
    await cli(['user', 'add', '--db', gw.db, '--account', 'acme', '--email', MKT, '--role', 'marketing']);
    await cli(['user', 'add', '--db', gw.db, '--account', 'acme', '--email', TECH, '--role', 'technical']);
    await cli(['user', 'add', '--db', gw.db, '--account', 'acme', '--email', LOCKED, '--role', 'analytics']);
    await cli(['domain', 'add', '--db', gw.db, '--account', 'acme', 'acme.test', '--verified']);
    apiKey = (await cli(['key', 'create', '--db', gw.db, '--account', 'acme', '--name', 'e2e'])).trim();
    assert.match(apiKey, /^\S{20,}$/, 'key create prints the key');
  });

  await step('start postern serve on a free loopback port', () => gw.start());

  browser = await withTimeout(chromium.launch({ executablePath: '/usr/bin/chromium', args: CHROMIUM_ARGS, timeout: 30000 }), 40000, 'chromium launch');
  const problems = [];
  const { ctx: context, p: page } = await openPage(problems);

  await step('login screen: labelled fields, wrong password shows the inline error', async () => {
    await page.goto(`${gw.base}/`);
    await page.getByRole('heading', { name: 'Log in to Postern' }).waitFor();
    await shot(page, 'login.png');
    await logIn(page, ADMIN, 'not the password');
    const alert = page.getByRole('alert').filter({ hasText: 'The account, email or password is incorrect.' });
    await alert.waitFor();
    assert.equal(await page.getByLabel('Email', { exact: true }).getAttribute('aria-invalid'), 'true');
    assert.equal(await page.getByRole('button', { name: 'Log out' }).count(), 0);
  });

  await step('locked out after 5 failed attempts: too_many_attempts is shown', async () => {
    for (let i = 0; i < 5; i++) {
      await logIn(page, LOCKED, `wrong ${i}`);
      await page.getByRole('button', { name: 'Log in', exact: true }).waitFor();
      await until(() => page.getByRole('button', { name: 'Log in', exact: true }).isEnabled(), 'the form to be ready again');
    }
    await logIn(page, LOCKED, PASSWORD);
    await page.getByRole('alert').filter({ hasText: 'Too many failed password attempts' }).waitFor();
    await page.getByLabel('Email', { exact: true }).fill('');
  });

  await step('Admin logs in and lands on Monitoring › Overview; Mail Settings is a click away', async () => {
    await logIn(page, ADMIN);
    await page.getByRole('heading', { name: 'Overview', level: 1 }).waitFor();
    assert.match(await page.getByRole('navigation', { name: 'Breadcrumb' }).textContent(), /Monitoring.*Overview/);
    await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Mail Settings', exact: true }).click();
    await page.getByRole('heading', { name: 'Mail Settings', level: 1 }).waitFor();
    await page.getByRole('heading', { name: 'Authorized sender email ID' }).waitFor();
    const crumbs = await page.getByRole('navigation', { name: 'Breadcrumb' }).textContent();
    assert.match(crumbs, /Settings.*General.*Mail Settings/);
    const nav = page.getByRole('navigation', { name: 'Main' });
    for (const link of ['Mail Settings', 'Approved Sending Domains', 'Users', 'API Keys', 'Overview', 'Activity', 'Messages']) {
      await nav.getByRole('link', { name: link, exact: true }).waitFor();
    }
    assert.equal(await switchState(page), 'false');
  });

  await step('Admin adds three sender addresses; all are Verification Pending', async () => {
    await page.getByLabel('Sender email addresses').fill('news@acme.test, billing@acme.test\nops@acme.test');
    await page.getByRole('button', { name: 'Save', exact: true }).click();
    await page.getByText('3 added.', { exact: false }).waitFor();
    for (const a of ['news@acme.test', 'billing@acme.test', 'ops@acme.test']) {
      assert.equal(await senderStatus(page, a), 'Verification Pending', a);
      const domain = (await senderRow(page, a).getByRole('cell').nth(2).textContent()).trim();
      assert.match(domain, /acme\.test/);
    }
  });

  await step('Admin verifies news@acme.test with its Verify button', async () => {
    const verify = page.getByRole('button', { name: 'Verify news@acme.test' });
    assert.equal((await verify.textContent()).trim(), 'Verify');
    await verify.click();
    await until(async () => (await senderStatus(page, 'news@acme.test')) === 'Verified', 'news to be Verified');
    assert.equal(await page.getByRole('button', { name: 'Verify news@acme.test' }).count(), 0);
    assert.equal(await senderStatus(page, 'billing@acme.test'), 'Verification Pending');
    const verifiedBy = await senderRow(page, 'news@acme.test').getByRole('cell').nth(4).textContent();
    assert.match(verifiedBy, /admin@acme\.test/);
  });

  await step('in mode both, a pending sender says which half it waits for (issue 19)', async () => {
    const admin = await apiSession(ADMIN);
    assert.equal((await admin.call('PUT', '/api/settings/sender-confirmation', { mode: 'both', password: PASSWORD })).status, 200);
    await page.getByLabel('Sender email addresses').fill('owner@acme.test');
    await page.getByRole('button', { name: 'Save', exact: true }).click();
    await page.getByText('1 added.', { exact: false }).waitFor();
    assert.match(await senderStatus(page, 'owner@acme.test'), /^Verification Pending\s*Waiting for Admin and owner$/);
    await page.getByRole('button', { name: 'Verify owner@acme.test' }).click();
    await until(async () => /Waiting for owner$/.test(await senderStatus(page, 'owner@acme.test')), 'the Admin half to be shown');
    assert.equal(await page.getByRole('button', { name: 'Verify owner@acme.test' }).count(), 0);
    // Adding it mailed its owner a link a moment ago: the next one must wait a minute.
    await page.getByRole('button', { name: 'Send the confirmation link to owner@acme.test again' }).click();
    await page.getByText('Could not send the link to owner@acme.test: A confirmation email went to this address less than a minute ago', { exact: false }).waitFor();
    const listed = (await admin.call('GET', '/api/senders')).body.senders.find((s) => s.address === 'owner@acme.test');
    assert.deepEqual(listed.waiting_for, ['owner']);
    assert.equal((await admin.call('DELETE', `/api/senders/${listed.id}`)).status, 204);
    assert.equal((await admin.call('PUT', '/api/settings/sender-confirmation', { mode: 'admin', password: PASSWORD })).status, 200);
    await page.reload();
    await senderRow(page, 'ops@acme.test').waitFor();
  });

  await step('Monitor mode goes on with the password; unlisted senders are accepted and flagged', async () => {
    const monitor = page.getByRole('switch', MONITOR);
    assert.equal(await monitor.getAttribute('aria-checked'), 'false');
    await monitor.click();
    await page.getByRole('dialog', { name: 'Turn on Monitor mode' }).waitFor();
    await confirmPassword(page);
    await until(async () => (await monitor.getAttribute('aria-checked')) === 'true', 'monitor on');
    assert.equal(await switchState(page), 'false', 'the protection itself stays off');
    for (const from of ['alerts@acme.test', 'alerts@acme.test', 'hello@acme.test']) {
      const r = await send(from, apiKey);
      assert.equal(r.status, 200, JSON.stringify(r.body));
      assert.equal(r.policy, 'monitor; would-refuse=sender_not_authorized');
    }
  });

  await step('the preflight lists the addresses that would be refused, with their sends', async () => {
    await page.reload();
    await page.getByRole('switch', MONITOR).waitFor();
    await page.getByText('3 of the 3 sends of the last 7 days would have been refused.').waitFor();
    const alerts = preflightRow(page, 'alerts@acme.test');
    await alerts.waitFor();
    assert.equal((await alerts.getByRole('cell').nth(1).textContent()).trim(), '2');
    assert.match(await alerts.textContent(), /Not listed.*Not a sender address/);
    assert.equal((await preflightRow(page, 'hello@acme.test').getByRole('cell').nth(1).textContent()).trim(), '1');
    assert.equal(await preflightRow(page, 'news@acme.test').count(), 0, 'a verified address is not listed');
    await page.getByRole('heading', { name: 'Preflight' }).scrollIntoViewIfNeeded();
    await shot(page, 'preflight.png', { fullPage: true });
  });

  await step('Add these addresses adds them in one batch; the Admin verifies them; nothing would be refused', async () => {
    await page.getByRole('button', { name: 'Add these addresses' }).click();
    await page.getByText('2 addresses added as Verification Pending. A verification email', { exact: false }).waitFor();
    for (const a of ['alerts@acme.test', 'hello@acme.test']) {
      assert.equal(await senderStatus(page, a), 'Verification Pending', a);
      assert.match(await preflightRow(page, a).textContent(), /Verification Pending.*Not verified yet/);
    }
    assert.equal(await page.getByRole('button', { name: 'Add these addresses' }).isVisible(), false);
    for (const a of ['alerts@acme.test', 'hello@acme.test']) {
      await page.getByRole('button', { name: `Verify ${a}` }).click();
      await until(async () => (await senderStatus(page, a)) === 'Verified', `${a} to be Verified`);
    }
    await page.getByText('None: every address sent from would still be accepted.').waitFor();
    await page.getByText('0 of the 3 sends of the last 7 days would have been refused.').waitFor();
  });

  await step('the switch opens a password dialog; Escape closes it and nothing changes', async () => {
    const sw = page.getByRole('switch', SWITCH);
    await sw.focus();
    await page.keyboard.press('Space');
    const dialog = page.getByRole('dialog');
    await dialog.waitFor();
    await until(() => dialog.getByLabel('Password', { exact: true }).evaluate((el) => el === document.activeElement), 'focus in the password field');
    await shot(page, 'password-dialog.png');
    await page.keyboard.press('Escape');
    await dialog.waitFor({ state: 'detached' });
    assert.equal(await switchState(page), 'false');
    assert.ok(await sw.evaluate((el) => el === document.activeElement), 'focus returns to the switch');
  });

  await step('a wrong password is shown in the dialog and the switch stays off', async () => {
    await page.getByRole('switch', SWITCH).click();
    const dialog = page.getByRole('dialog');
    await dialog.getByLabel('Password', { exact: true }).fill('wrong password');
    await dialog.getByRole('button', { name: 'Confirm' }).click();
    await dialog.getByText('The password is incorrect.', { exact: false }).waitFor();
    assert.ok(await dialog.isVisible());
    assert.equal(await switchState(page), 'false');
    await dialog.getByRole('button', { name: 'Cancel' }).click();
    await dialog.waitFor({ state: 'detached' });
    assert.equal(await switchState(page), 'false');
  });

  await step('the right password turns Authorized sender email ID on', async () => {
    await page.getByRole('switch', SWITCH).click();
    const dialog = page.getByRole('dialog');
    // The dialog says what switching on would have refused.
    await dialog.getByText('0 of the 3 sends of the last 7 days would have been refused.').waitFor();
    await dialog.getByLabel('Password', { exact: true }).fill(PASSWORD);
    await dialog.getByRole('button', { name: 'Confirm' }).click();
    await dialog.waitFor({ state: 'detached' });
    await until(async () => (await switchState(page)) === 'true', 'switch on');
    assert.equal(await page.getByRole('switch', MONITOR).count(), 0, 'Monitor mode is shown only while off');
    // What monitor mode reported, added and verified, is now accepted: zero refusals.
    for (const from of ['alerts@acme.test', 'hello@acme.test']) {
      const r = await send(from, apiKey);
      assert.equal(r.status, 200, JSON.stringify(r.body));
      assert.equal(r.policy, null);
    }
    // One address is verified, so mail is not all being dropped.
    assert.equal(await page.getByRole('alert').filter({ hasText: 'All outgoing email is being dropped' }).count(), 0);
    await page.reload();
    await page.getByRole('switch', SWITCH).waitFor();
    assert.equal(await switchState(page), 'true', 'the state survives a reload');
    await senderRow(page, 'ops@acme.test').waitFor();
    await shot(page, 'mail-settings.png', { fullPage: true });
  });

  await step('send API: the verified address is accepted, the pending one refused', async () => {
    const ok = await send('news@acme.test', apiKey);
    assert.equal(ok.status, 200, JSON.stringify(ok.body));
    assert.equal(ok.body.status, 'success');
    const refused = await send('billing@acme.test', apiKey);
    assert.equal(refused.status, 403, JSON.stringify(refused.body));
    assert.equal(refused.body.error[0].code, 'sender_pending_verification');
  });

  await step('Marketing can add an address but sees no Verify and a disabled switch', async () => {
    await logOut(page);
    await page.getByText('You have logged out.').waitFor();
    await logInToMailSettings(page, MKT);
    const sw = page.getByRole('switch', SWITCH);
    assert.ok(await sw.isDisabled(), 'switch disabled for Marketing');
    assert.equal(await switchState(page), 'true');
    await page.getByText('Your role (Marketing) cannot change this setting').waitFor();
    assert.equal(await page.getByRole('button', { name: /^Verify / }).count(), 0);
    assert.equal(await page.getByRole('button', { name: /^Remove / }).count(), 0, 'Marketing cannot remove senders');
    const nav = page.getByRole('navigation', { name: 'Main' });
    assert.equal(await nav.getByRole('link', { name: 'Users' }).count(), 0);
    assert.equal(await nav.getByRole('link', { name: 'API Keys' }).count(), 0);
    await page.getByLabel('Sender email addresses').fill('promo@acme.test not-an-address');
    await page.getByRole('button', { name: 'Save', exact: true }).click();
    await page.getByText('1 added, 1 invalid.', { exact: false }).waitFor();
    assert.equal(await senderStatus(page, 'promo@acme.test'), 'Verification Pending');
    assert.equal(await page.getByLabel('Sender email addresses').inputValue(), 'not-an-address');
  });

  await step('Technical Team can toggle (switch enabled) but sees no Verify', async () => {
    await logOut(page);
    await logInToMailSettings(page, TECH);
    const sw = page.getByRole('switch', SWITCH);
    assert.ok(await sw.isEnabled(), 'switch enabled for Technical Team');
    assert.equal(await page.getByRole('button', { name: /^Verify / }).count(), 0);
    assert.ok(await page.getByRole('button', { name: 'Remove ops@acme.test' }).isVisible());
    // Turn it off and on again with the technical user's own password.
    for (const want of ['false', 'true']) {
      await sw.click();
      const dialog = page.getByRole('dialog');
      await dialog.getByLabel('Password', { exact: true }).fill(PASSWORD);
      await dialog.getByRole('button', { name: 'Confirm' }).click();
      await dialog.waitFor({ state: 'detached' });
      await until(async () => (await switchState(page)) === want, `switch ${want}`);
    }
    const nav = page.getByRole('navigation', { name: 'Main' });
    assert.equal(await nav.getByRole('link', { name: 'Users' }).count(), 0);
    await nav.getByRole('link', { name: 'API Keys' }).waitFor();
  });

  await step('Technical Team changes their password from the header; only the new one logs in', async () => {
    // Another session of the same user, which the change must end.
    const other = await fetch(`${gw.base}/api/session`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ account: ACCOUNT, email: TECH, password: PASSWORD }),
      signal: AbortSignal.timeout(15000),
    });
    assert.equal(other.status, 200);
    const otherCookie = other.headers.get('set-cookie').split(';')[0];

    // Keyboard: the dialog takes focus, Escape closes it, focus returns to the button.
    const open = page.getByRole('banner').getByRole('button', { name: 'Change password' });
    await open.focus();
    await page.keyboard.press('Enter');
    const dialog = page.getByRole('dialog', { name: 'Change password' });
    await dialog.waitFor();
    await until(() => dialog.getByLabel('Current password', { exact: true }).evaluate((el) => el === document.activeElement), 'focus in Current password');
    await page.keyboard.press('Escape');
    await dialog.waitFor({ state: 'detached' });
    assert.ok(await open.evaluate((el) => el === document.activeElement), 'focus returns to Change password');

    await open.click();
    const current = dialog.getByLabel('Current password', { exact: true });
    const next = dialog.getByLabel('New password', { exact: true });
    const again = dialog.getByLabel('Confirm new password', { exact: true });
    const submit = dialog.getByRole('button', { name: 'Change password' });
    // Checked before anything is sent: too short, then not matching.
    await current.fill('wrong password');
    await next.fill('short');
    await again.fill('short');
    await submit.click();
    await dialog.getByText('Use at least 8 characters.').waitFor();
    assert.equal(await next.getAttribute('aria-invalid'), 'true');
    await next.fill(TECH_NEW_PASSWORD);
    await again.fill(`${TECH_NEW_PASSWORD}!`);
    await submit.click();
    await dialog.getByText('The new passwords do not match.', { exact: false }).waitFor();
    assert.equal(await again.getAttribute('aria-invalid'), 'true');

    // A wrong current password: the API's 403, shown in the dialog, which stays open.
    await again.fill(TECH_NEW_PASSWORD);
    const [wrong] = await Promise.all([
      page.waitForResponse((r) => r.url().endsWith('/api/users/me/password')),
      submit.click(),
    ]);
    assert.equal(wrong.status(), 403);
    await dialog.getByText('The current password is incorrect.').waitFor();
    assert.equal(await current.getAttribute('aria-invalid'), 'true');
    assert.ok(await current.evaluate((el) => el === document.activeElement), 'focus on Current password');

    // The right one: the dialog closes and the change is confirmed.
    await current.fill(PASSWORD);
    const [ok] = await Promise.all([
      page.waitForResponse((r) => r.url().endsWith('/api/users/me/password')),
      submit.click(),
    ]);
    assert.equal(ok.status(), 204);
    await dialog.waitFor({ state: 'detached' });
    await page.getByRole('status').filter({ hasText: 'Password changed. Other sessions were signed out.' }).waitFor();
    assert.ok(await open.evaluate((el) => el === document.activeElement), 'focus returns to Change password');
    const otherNow = await fetch(`${gw.base}/api/session`, { headers: { Cookie: otherCookie }, signal: AbortSignal.timeout(15000) });
    assert.equal(otherNow.status, 401, 'the other session has ended');

    await logOut(page);
    await logIn(page, TECH, PASSWORD);
    await page.getByRole('alert').filter({ hasText: 'The account, email or password is incorrect.' }).waitFor();
    assert.equal(await page.getByRole('button', { name: 'Log out' }).count(), 0);
    await logInToMailSettings(page, TECH, TECH_NEW_PASSWORD);
    await page.getByText(TECH, { exact: true }).first().waitFor();
  });

  await step('an ended session returns to Log in with a message', async () => {
    await context.clearCookies();
    await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Activity' }).click();
    await page.getByText('Your session has ended').waitFor();
    await page.getByRole('button', { name: 'Log in', exact: true }).waitFor();
  });

  await step('Admin screens: domains, API keys (new key shown once), users, activity, messages', async () => {
    await logIn(page, ADMIN);
    await page.getByRole('heading', { name: 'Activity', level: 1 }).waitFor();

    await page.goto(`${gw.base}/#/domains`);
    await page.getByRole('heading', { name: 'acme.test' }).waitFor();
    await page.getByRole('switch', { name: 'Active: acme.test' }).waitFor();
    await page.getByRole('button', { name: 'Check DNS records for acme.test' }).waitFor();
    assert.ok((await page.getByRole('button', { name: /^Copy value of the DKIM key record/ }).count()) >= 1);
    assert.ok(await page.getByRole('button', { name: 'Add domain' }).isEnabled());
    await page.getByLabel('Domain', { exact: true }).fill('co.uk');
    await page.getByRole('button', { name: 'Add domain' }).click();
    await page.getByText('public suffix', { exact: false }).waitFor();
    await page.getByLabel('Domain', { exact: true }).fill('mail.acme.test');
    await page.getByRole('button', { name: 'Add domain' }).click();
    await page.getByRole('heading', { name: 'mail.acme.test' }).waitFor();
    const card = page.locator('article').filter({ has: page.getByRole('heading', { name: 'mail.acme.test' }) });
    await card.getByText('Verification Pending', { exact: true }).waitFor();
    // Nothing answers DNS in this test: the check reports that and changes nothing.
    await page.getByRole('button', { name: 'Check DNS records for mail.acme.test' }).click();
    await card.getByText('The lookup did not finish', { exact: false }).first().waitFor({ timeout: 20000 });
    const active = page.getByRole('switch', { name: 'Active: mail.acme.test' });
    assert.equal(await active.getAttribute('aria-checked'), 'true');
    await active.click();
    await until(async () => (await active.getAttribute('aria-checked')) === 'false', 'the domain to be inactive');
    await card.getByText('Inactive', { exact: true }).first().waitFor();
    await page.evaluate(() => window.scrollTo(0, 0));
    await shot(page, 'domains.png');

    await page.goto(`${gw.base}/#/api-keys`);
    await page.getByRole('cell', { name: 'e2e', exact: true }).waitFor();
    await page.getByLabel('Name', { exact: true }).fill('Billing service');
    await page.getByRole('button', { name: 'Create key' }).click();
    await page.getByText('you will not see it again', { exact: false }).waitFor();
    await page.getByRole('button', { name: 'Copy API key Billing service' }).waitFor();
    await page.getByRole('cell', { name: 'Billing service', exact: true }).waitFor();
    await shot(page, 'api-keys.png');

    await page.goto(`${gw.base}/#/users`);
    const last = page.getByRole('row').filter({ hasText: ADMIN });
    await last.waitFor();
    await page.getByLabel(`Role of ${ADMIN}`, { exact: true }).selectOption('marketing');
    await page.getByRole('button', { name: `Change role of ${ADMIN}` }).click();
    await last.getByText('An account needs at least one Admin', { exact: false }).waitFor();

    await page.goto(`${gw.base}/#/activity`);
    await page.getByRole('cell', { name: 'sender_auth.enabled', exact: true }).first().waitFor();
    await page.getByLabel('Action', { exact: true }).selectOption('sender.verified');
    await until(async () => (await page.getByRole('row').count()) === 4, 'three sender.verified rows (news, alerts, hello) plus the header');
    await page.getByLabel('Action', { exact: true }).selectOption('');
    await shot(page, 'activity.png');

    await page.goto(`${gw.base}/#/messages`);
    await page.getByRole('heading', { name: 'Totals' }).waitFor();
    // The three sends Monitor mode let through, counted apart from the refusals.
    const monitored = page.locator('.stat').filter({ hasText: 'Accepted in Monitor mode, would be refused' });
    assert.equal((await monitored.locator('.stat-value').textContent()).trim(), '3');
    const pendingRow = page.getByRole('row').filter({ hasText: 'sender_pending_verification' }).first();
    await until(async () => (await pendingRow.getByRole('cell').nth(2).textContent()).trim() === '1', 'the refused send counted by reason');
    await page.getByRole('cell', { name: 'news@acme.test', exact: true }).first().waitFor();
    await shot(page, 'messages.png');
  });

  await step('Admin rotates the DKIM key of mail.acme.test; a second rotation is refused while it waits', async () => {
    await page.goto(`${gw.base}/#/domains`);
    const card = page.locator('article').filter({ has: page.getByRole('heading', { name: 'mail.acme.test' }) });
    await card.waitFor();
    assert.equal(await card.getByText(/next key/).count(), 0);
    const rotate = page.getByRole('button', { name: 'Rotate DKIM key for mail.acme.test' });
    await rotate.click();
    await card.getByText('A new DKIM key was made.', { exact: false }).waitFor();
    // The new record, labelled by its purpose, with its own Copy buttons.
    const nextRow = card.getByRole('row').filter({ hasText: /DKIM \(next key/ });
    await nextRow.waitFor();
    await nextRow.getByRole('button', { name: 'Copy value of the next DKIM key record for mail.acme.test' }).waitFor();
    assert.match(await nextRow.textContent(), /_domainkey\.mail\.acme\.test/);
    await card.getByRole('button', { name: 'Copy value of the DKIM key record for mail.acme.test' }).waitFor();
    assert.ok(await page.getByRole('button', { name: 'Rotate DKIM key for mail.acme.test' }).evaluate((el) => el === document.activeElement), 'focus stays on Rotate DKIM key');

    const [again] = await Promise.all([
      page.waitForResponse((r) => r.url().endsWith('/dkim/rotate')),
      page.getByRole('button', { name: 'Rotate DKIM key for mail.acme.test' }).click(),
    ]);
    assert.equal(again.status(), 409);
    const pending = card.locator('.dkim-rotate').getByText('already waiting for its DNS record', { exact: false });
    await pending.waitFor();
    assert.equal(await card.getByRole('row').filter({ hasText: /next key/ }).count(), 1, 'still one next key');
  });

  await step('a domain the operator rejects reads Rejected and why; approved again it is Verified', async () => {
    const decide = (verb) => cli(['domain', verb, '--db', gw.db, '--account', 'acme', 'ops.acme.test']);
    await cli(['domain', 'add', '--db', gw.db, '--account', 'acme', 'ops.acme.test', '--verified']);
    await decide('reject');
    await page.goto(`${gw.base}/#/domains`);
    await page.reload();
    const card = page.locator('article').filter({ has: page.getByRole('heading', { name: 'ops.acme.test' }) });
    await card.getByText('Rejected', { exact: true }).waitFor();
    await card.getByText('An operator of this Postern installation rejected this domain', { exact: false }).waitFor();
    await decide('approve');
    await page.reload();
    await card.getByText('Verified', { exact: true }).waitFor();
    assert.equal(await card.getByText('Rejected', { exact: true }).count(), 0);
  });

  await step('at 390 px the Mail Settings screen has no horizontal page overflow', async () => {
    const mobile = await browser.newContext({ viewport: { width: 390, height: 844 }, deviceScaleFactor: 1, isMobile: false });
    mobile.setDefaultTimeout(10000);
    const m = await mobile.newPage();
    watch(m, problems);
    failureShot = m;
    await m.goto(`${gw.base}/#/mail-settings`);
    await logIn(m, ADMIN);
    await m.getByRole('switch', SWITCH).waitFor();
    await senderRow(m, 'ops@acme.test').waitFor();
    const width = await m.evaluate(() => document.documentElement.scrollWidth);
    assert.ok(width <= 390, `scrollWidth ${width} > 390`);
    // The navigation collapses behind a Menu button.
    const menu = m.getByRole('button', { name: 'Menu' });
    assert.equal(await m.getByRole('link', { name: 'Messages' }).isVisible(), false);
    await shot(m, 'mail-settings-mobile.png', { fullPage: true });
    await menu.click();
    await m.getByRole('link', { name: 'Messages' }).click();
    await m.getByRole('heading', { name: 'Messages', level: 1 }).waitFor();
    const width2 = await m.evaluate(() => document.documentElement.scrollWidth);
    assert.ok(width2 <= 390, `Messages scrollWidth ${width2} > 390`);
    await mobile.close();
  });

  await webhookSteps(page, apiKey, problems);
  await suppressionSteps(page, apiKey, problems);
  await returnPathSteps(problems);
  await overviewSteps(problems);

  assert.deepEqual(problems, [], 'no script errors or CSP violations');
}

// --- Webhooks and message timelines ---------------------------------------------------

const ANALYST = 'analyst@acme.test';

/**
 * A webhook receiver on 127.0.0.1: answers 204 to every request and keeps each one
 * ({method, url, headers, body}) in requests. Closed by cleanup() through its handle.
 */
function startReceiver() {
  const requests = [];
  const server = http.createServer((req, res) => {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => {
      requests.push({ method: req.method, url: req.url, headers: req.headers, body: Buffer.concat(chunks).toString('utf8') });
      res.writeHead(204);
      res.end();
    });
  });
  return withTimeout(new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve({ server, requests, url: `http://127.0.0.1:${server.address().port}/hooks/postern` }));
  }), 5000, 'the webhook receiver to listen');
}

function stopReceiver() {
  if (!receiver) return Promise.resolve();
  const { server } = receiver;
  receiver = null;
  server.closeAllConnections();
  return withTimeout(new Promise((resolve) => server.close(() => resolve())), 5000, 'receiver close').catch(() => {});
}

/** True when a Standard Webhooks request carries a valid v1 signature made with secret. */
function standardSignatureValid(req, secret) {
  const key = Buffer.from(secret.replace(/^whsec_/, ''), 'base64');
  const signed = `${req.headers['webhook-id']}.${req.headers['webhook-timestamp']}.${req.body}`;
  const want = crypto.createHmac('sha256', key).update(signed).digest('base64');
  return (req.headers['webhook-signature'] || '').split(' ').some((s) => s === `v1,${want}`);
}

function webhookRow(page, url) {
  return page.getByRole('row').filter({ hasText: url });
}

async function webhookSteps(page, apiKey, problems) {
  receiver = await startReceiver();
  const hookUrl = receiver.url;
  let secret;

  await step('Admin adds a webhook endpoint: the API\'s refusal is shown, then the secret once with Copy', async () => {
    await page.goto(`${gw.base}/#/webhooks`);
    await page.getByRole('heading', { name: 'Webhooks', level: 1 }).waitFor();
    await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Webhooks', exact: true }).waitFor();
    await page.getByText('No endpoints yet.', { exact: false }).waitFor();
    await page.getByRole('button', { name: 'Add endpoint' }).click();
    const dialog = page.getByRole('dialog', { name: 'Add a webhook endpoint' });
    await dialog.waitFor();
    const url = dialog.getByLabel('URL', { exact: true });
    assert.ok(await url.evaluate((el) => el === document.activeElement), 'focus in the URL field');
    assert.ok(await dialog.getByRole('checkbox', { name: 'All events' }).isChecked(), 'All events by default');
    assert.ok(await dialog.getByRole('checkbox', { name: 'message.delivered' }).isDisabled(), 'single events wait for All events to be unchecked');

    // Only http and https: the API's 400 is shown at the field, the dialog stays open.
    await url.fill('ftp://127.0.0.1/hooks');
    const [refused] = await Promise.all([
      page.waitForResponse((r) => r.url().endsWith('/api/webhooks') && r.request().method() === 'POST'),
      dialog.getByRole('button', { name: 'Add endpoint' }).click(),
    ]);
    assert.equal(refused.status(), 400);
    await until(async () => (await url.getAttribute('aria-invalid')) === 'true', 'the URL marked invalid');

    // SendGrid's format takes message events only.
    await dialog.getByLabel('Format', { exact: true }).selectOption('sendgrid');
    await dialog.getByRole('checkbox', { name: 'All events' }).uncheck();
    assert.ok(await dialog.getByRole('checkbox', { name: 'sender.added' }).isDisabled(), 'no account events for sendgrid');
    assert.ok(await dialog.getByRole('checkbox', { name: 'message.bounced' }).isEnabled());
    await dialog.getByLabel('Format', { exact: true }).selectOption('standard');
    await dialog.getByRole('checkbox', { name: 'All events' }).check();

    await url.fill(hookUrl);
    const [made] = await Promise.all([
      page.waitForResponse((r) => r.url().endsWith('/api/webhooks') && r.request().method() === 'POST'),
      dialog.getByRole('button', { name: 'Add endpoint' }).click(),
    ]);
    assert.equal(made.status(), 201);
    const shown = page.getByRole('dialog', { name: 'Endpoint added' });
    await shown.getByText('it will not be shown again', { exact: false }).waitFor();
    secret = (await shown.locator('code.secret').textContent()).trim();
    assert.match(secret, /^whsec_[A-Za-z0-9+/=]{20,}$/);
    const copy = shown.getByRole('button', { name: 'Copy signing secret' });
    await copy.click();
    await until(async () => /Copied|Ctrl\+C/.test(await copy.textContent()), 'the Copy button to answer');
    await shown.getByRole('button', { name: 'Done' }).click();
    await shown.waitFor({ state: 'detached' });

    const row = webhookRow(page, hookUrl);
    await row.waitFor();
    assert.match(await row.textContent(), /Standard Webhooks/);
    assert.match(await row.textContent(), /All events/);
    await row.getByText('Enabled', { exact: true }).waitFor();
    assert.equal(await page.getByText(secret).count(), 0, 'the secret is not shown again');
    await page.reload();
    await webhookRow(page, hookUrl).waitFor();
    assert.ok(!(await page.content()).includes(secret), 'nor after a reload');
  });

  await step('Send test event: the receiver gets a signed webhook.test; Last delivery shows 2xx', async () => {
    await page.getByRole('button', { name: `Send a test event to ${hookUrl}` }).click();
    await page.getByText('A test event is on its way', { exact: false }).waitFor();
    const got = await until(() => receiver.requests.find((r) => r.body.includes('webhook.test')), 'the test event at the receiver', 20000);
    assert.equal(got.method, 'POST');
    assert.equal(got.url, '/hooks/postern');
    assert.equal(JSON.parse(got.body).type, 'webhook.test');
    assert.match(got.headers['webhook-id'], /^evt_\d+$/);
    assert.ok(standardSignatureValid(got, secret), 'signed with the secret the panel showed');
    const row = webhookRow(page, hookUrl);
    await until(async () => {
      await page.getByRole('button', { name: 'Refresh' }).click();
      return /^204(?!\d)/.test((await row.getByRole('cell').nth(4).textContent()).trim());
    }, 'Last delivery to show 204', 15000, 300);
    await shot(page, 'webhooks.png');
  });

  await step('Admin disables and enables the endpoint, then deletes it after confirming', async () => {
    const row = webhookRow(page, hookUrl);
    await page.getByRole('button', { name: `Disable ${hookUrl}` }).click();
    await row.getByText('Disabled', { exact: true }).waitFor();
    await page.getByRole('button', { name: `Enable ${hookUrl}` }).click();
    await row.getByText('Enabled', { exact: true }).waitFor();

    await page.getByRole('button', { name: `Delete ${hookUrl}` }).click();
    const confirm = page.getByRole('dialog', { name: 'Delete this endpoint?' });
    await confirm.getByRole('button', { name: 'Cancel' }).click();
    await confirm.waitFor({ state: 'detached' });
    await row.waitFor();
    await page.getByRole('button', { name: `Delete ${hookUrl}` }).click();
    await confirm.getByRole('button', { name: 'Delete' }).click();
    await page.getByText(`${hookUrl} was deleted.`).waitFor();
    assert.equal(await webhookRow(page, hookUrl).count(), 0);
    await page.getByText('No endpoints yet.', { exact: false }).waitFor();
  });

  await step('an Analytics user sees no Webhooks in the navigation and cannot open it', async () => {
    await cli(['user', 'add', '--db', gw.db, '--account', ACCOUNT, '--email', ANALYST, '--role', 'analytics']);
    const { other, p } = await loggedInElsewhere(ANALYST, problems);
    const nav = p.getByRole('navigation', { name: 'Main' });
    await nav.getByRole('link', { name: 'Messages', exact: true }).waitFor();
    assert.equal(await nav.getByRole('link', { name: 'Webhooks' }).count(), 0);
    await p.goto(`${gw.base}/#/webhooks`);
    await p.getByText('Your role (Analytics) cannot open Webhooks.', { exact: false }).waitFor();
    await other.close();
    failureShot = page;
  });

  await step('Messages: a message\'s timeline lists processed, then delivered, oldest first', async () => {
    const sent = await send('news@acme.test', apiKey);
    assert.ok(sent.status >= 200 && sent.status < 300, `send answered ${sent.status}`);
    const id = sent.body.data.message_id;
    await until(async () => {
      const r = await page.evaluate(async (mid) => (await fetch(`/api/events?message_id=${encodeURIComponent(mid)}`)).json(), id);
      return r.events && r.events.some((e) => e.type === 'message.delivered');
    }, 'the message to be delivered', 30000, 200);

    await page.goto(`${gw.base}/#/messages`);
    const open = page.getByRole('button', { name: `Timeline of message ${id}` });
    await open.click();
    const dialog = page.getByRole('dialog', { name: `Timeline of message ${id}` });
    await dialog.waitFor();
    const rows = dialog.getByRole('row');
    await until(async () => (await rows.count()) >= 3, 'a header and two events');
    const types = await rows.evaluateAll((trs) => trs.slice(1).map((tr) => tr.cells[1].textContent.trim()));
    assert.deepEqual(types, ['Processed', 'Delivered']);
    const delivered = rows.nth(2);
    assert.match(await delivered.textContent(), /bob@example\.com/);
    assert.equal((await delivered.getByRole('cell').nth(4).textContent()).trim(), '1', 'the first attempt');
    await shot(page, 'message-timeline.png');
    await dialog.getByRole('button', { name: 'Close' }).click();
    await dialog.waitFor({ state: 'detached' });
    assert.ok(await open.evaluate((el) => el === document.activeElement), 'focus returns to the Timeline button');

    // A click anywhere on the row opens it too.
    await page.getByRole('row').filter({ has: open }).getByRole('cell').first().click();
    await dialog.waitFor();
    await page.keyboard.press('Escape');
    await dialog.waitFor({ state: 'detached' });
  });
}

// --- Suppressions -----------------------------------------------------------------------

const GONE = 'gone@example.org';
const TRAP = 'spam.trap@example.net';

function suppressionRow(page, email) {
  return page.getByRole('row').filter({ hasText: email });
}

/** The events of a message through the panel's session, newest first. */
function messageEvents(page, id) {
  return page.evaluate(async (mid) => (await fetch(`/api/events?message_id=${encodeURIComponent(mid)}`)).json(), id);
}

async function suppressionSteps(page, apiKey, problems) {
  await step('Admin adds two addresses to the suppression list, filters it, removes one after confirming', async () => {
    await page.goto(`${gw.base}/#/suppressions`);
    await page.getByRole('heading', { name: 'Suppressions', level: 1 }).waitFor();
    await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Suppressions', exact: true }).waitFor();
    await page.getByText('No suppressed address.', { exact: false }).waitFor();

    const box = page.getByLabel('Addresses to suppress');
    await page.getByRole('button', { name: 'Add', exact: true }).click();
    assert.equal(await box.getAttribute('aria-invalid'), 'true', 'an empty box is refused here');
    // The API's refusal of a bad address is shown at the field, naming it.
    await box.fill(`${GONE}, not-an-address`);
    const [refused] = await Promise.all([
      page.waitForResponse((r) => r.url().endsWith('/api/suppressions') && r.request().method() === 'POST'),
      page.getByRole('button', { name: 'Add', exact: true }).click(),
    ]);
    assert.equal(refused.status(), 400);
    await page.locator('.field-error').filter({ hasText: 'not-an-address' }).waitFor();

    await box.fill(`${GONE},\nSpam.Trap@Example.NET`);
    await page.getByRole('button', { name: 'Add', exact: true }).click();
    await page.getByText('2 added.', { exact: true }).waitFor();
    assert.equal(await box.inputValue(), '');
    for (const email of [GONE, TRAP]) {
      const row = suppressionRow(page, email);
      await row.waitFor();
      assert.equal((await row.getByRole('cell').nth(1).textContent()).trim(), 'Manual', email);
    }
    // Listed once, whatever the case it is typed in.
    await box.fill('GONE@example.org');
    await page.getByRole('button', { name: 'Add', exact: true }).click();
    await page.getByText('0 added. 1 was already listed.', { exact: true }).waitFor();
    assert.equal(await suppressionRow(page, GONE).count(), 1);

    const reason = page.getByLabel('Reason', { exact: true });
    await reason.selectOption('hard_bounce');
    await page.getByText('No suppressed address matches the filter.').waitFor();
    await reason.selectOption('manual');
    await suppressionRow(page, TRAP).waitFor();
    assert.equal(await suppressionRow(page, GONE).count(), 1);
    await reason.selectOption('');
    await page.getByLabel('Email address', { exact: true }).fill(TRAP);
    await page.getByRole('button', { name: 'Search', exact: true }).click();
    await until(async () => (await suppressionRow(page, GONE).count()) === 0, 'the search to leave one address');
    assert.equal(await suppressionRow(page, TRAP).count(), 1);

    await page.getByRole('button', { name: `Remove ${TRAP}` }).click();
    const confirm = page.getByRole('dialog', { name: `Remove ${TRAP} from the suppression list?` });
    await confirm.getByRole('button', { name: 'Cancel' }).click();
    await confirm.waitFor({ state: 'detached' });
    await page.getByRole('button', { name: `Remove ${TRAP}` }).click();
    const [removed] = await Promise.all([
      page.waitForResponse((r) => r.request().method() === 'DELETE'),
      confirm.getByRole('button', { name: 'Remove' }).click(),
    ]);
    assert.equal(removed.status(), 204);
    assert.match(removed.url(), /\/api\/suppressions\/spam\.trap%40example\.net$/);
    await page.getByText(`${TRAP} was removed`, { exact: false }).waitFor();
    await page.getByText('No suppressed address matches the filter.').waitFor();
    await page.getByLabel('Email address', { exact: true }).fill('');
    await page.getByRole('button', { name: 'Search', exact: true }).click();
    await suppressionRow(page, GONE).waitFor();
    assert.equal(await suppressionRow(page, TRAP).count(), 0);
  });

  await step('a message to a suppressed address is dropped; its timeline reads "Suppressed recipient"', async () => {
    const sent = await send('news@acme.test', apiKey, GONE);
    assert.ok(sent.status >= 200 && sent.status < 300, `send answered ${sent.status}`);
    const id = sent.body.data.message_id;
    await until(async () => (await messageEvents(page, id)).events.some((e) => e.type === 'message.dropped'),
      'the message to be dropped at delivery', 30000, 200);

    // A message link (#/messages?id=…) opens its timeline.
    await page.goto(`${gw.base}/#/messages?id=${id}`);
    const dialog = page.getByRole('dialog', { name: `Timeline of message ${id}` });
    await dialog.waitFor();
    const dropped = dialog.getByRole('row').filter({ hasText: 'Dropped' });
    await dropped.waitFor();
    assert.match(await dropped.textContent(), /gone@example\.org/);
    assert.match(await dropped.getByRole('cell').nth(3).textContent(), /Suppressed recipient/);
    await dialog.getByRole('button', { name: 'Close' }).click();
    await dialog.waitFor({ state: 'detached' });
    const row = page.getByRole('row').filter({ has: page.getByRole('button', { name: `Timeline of message ${id}` }) });
    await row.getByText('Dropped', { exact: true }).waitFor();
    await row.getByText('Suppressed recipient', { exact: true }).waitFor();
  });

  await step('a Marketing user sees the suppression list without Add or Remove', async () => {
    const { other, p } = await loggedInElsewhere(MKT, problems);
    await p.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Suppressions', exact: true }).click();
    await p.getByRole('heading', { name: 'Suppressions', level: 1 }).waitFor();
    await suppressionRow(p, GONE).waitFor();
    assert.equal(await p.getByLabel('Addresses to suppress').count(), 0);
    assert.equal(await p.getByRole('button', { name: `Remove ${GONE}` }).count(), 0);
    assert.equal(await p.getByRole('columnheader', { name: 'Actions' }).count(), 0);
    await other.close();
    failureShot = page;
  });
}

// --- The return path: a hard bounce and an unreadable report ---------------------------

const BOUNCES = 'bounces.test';
const BOUNCED = 'nobody@example.com';
const VERP = /^X-Mail-Args:\s*(?:FROM:)?<?(b-([0-9a-f]{32})-[0-9a-f]+@bounces\.test)>?/im;

/** Dot-stuffs a message for DATA, its lines ended with CRLF. */
function smtpData(text) {
  return text.split(/\r?\n/).map((l) => (l.startsWith('.') ? `.${l}` : l)).join('\r\n');
}

/**
 * Sends one report to the bounce listener as an MTA would (null sender, one recipient);
 * resolves to the reply to the end of DATA, rejects on any other unexpected reply.
 */
function smtpReport(port, rcpt, text) {
  const script = [
    [null, 220], ['EHLO relay.test', 250], ['MAIL FROM:<>', 250], [`RCPT TO:<${rcpt}>`, 250],
    ['DATA', 354], [`${smtpData(text)}\r\n.`, 250], ['QUIT', 221],
  ];
  return withTimeout(new Promise((resolve, reject) => {
    const sock = net.connect(port, '127.0.0.1');
    let buf = '';
    let i = 0;
    let stored = null;
    sock.setEncoding('utf8');
    sock.on('error', reject);
    sock.on('close', () => (stored ? resolve(stored) : reject(new Error(`the listener closed after: ${buf}`))));
    sock.on('data', (chunk) => {
      buf += chunk;
      // A reply is complete at its line "NNN text" (the lines before it are "NNN-text").
      for (let m = /^(\d{3}) .*\r\n/m.exec(buf); m; m = /^(\d{3}) .*\r\n/m.exec(buf)) {
        const reply = buf.slice(0, m.index + m[0].length);
        buf = buf.slice(m.index + m[0].length);
        if (Number(m[1]) !== script[i][1]) {
          sock.destroy();
          reject(new Error(`${script[i][0] || 'the greeting'} was answered ${reply.trim()}`));
          return;
        }
        if (i === 5) stored = reply.trim();
        i += 1;
        if (i < script.length) sock.write(`${script[i][0]}\r\n`);
        else sock.end();
      }
    });
  }), 20000, 'a report over SMTP');
}

/** A delivery status notification of a hard bounce, laid out as Postfix writes one. */
function hardBounceDsn(verp, rcpt) {
  const diagnostic = `550 5.1.1 <${rcpt}>: Recipient address rejected: User unknown`;
  return [
    'From: MAILER-DAEMON@relay.test (Mail Delivery System)', 'Subject: Undelivered Mail Returned to Sender',
    `To: ${verp}`, 'Auto-Submitted: auto-replied', 'MIME-Version: 1.0',
    'Content-Type: multipart/report; report-type=delivery-status;', '\tboundary="4XYZ.1/relay.test"', '',
    '--4XYZ.1/relay.test', 'Content-Type: text/plain; charset=us-ascii', '',
    `<${rcpt}>: host mx.example.com[192.0.2.1] said: ${diagnostic}`, '',
    '--4XYZ.1/relay.test', 'Content-Type: message/delivery-status', '',
    'Reporting-MTA: dns; relay.test', '',
    `Final-Recipient: rfc822; ${rcpt}`, 'Action: failed', 'Status: 5.1.1',
    `Diagnostic-Code: smtp; ${diagnostic}`, '',
    '--4XYZ.1/relay.test--', '',
  ].join('\r\n');
}

/** An auto-reply: nothing in it says what became of the message; markup in it is text. */
const AUTO_REPLY = [
  'From: Alex <alex@example.com>', 'Subject: Away: Hi', 'Auto-Submitted: auto-replied', '',
  'I am away and will read your message when I am back.',
  '<script>document.title = "owned"</script>', '',
].join('\r\n');

/** The VERP address the message to `to` left with, from the sink's copy; null if none. */
function verpOf(sinkDir, to) {
  for (const name of fs.readdirSync(sinkDir)) {
    const text = fs.readFileSync(path.join(sinkDir, name), 'utf8');
    if (!text.includes(to)) continue;
    const m = VERP.exec(text);
    if (m) return { address: m[1], id: m[2] };
  }
  return null;
}

async function returnPathSteps(problems) {
  returnGw = new Gateway(['--sink', '--bounces', BOUNCES, '--account', ACCOUNT, '--admin', ADMIN, '--domain', 'acme.test']);
  await step('a second gateway with a return path (bounces.test) relaying to an SMTP sink', () => returnGw.start());
  const { api_key: key, sink_dir: sinkDir, bounces_port: bouncesPort } = returnGw.info;

  const sent = await send('news@acme.test', key, BOUNCED, returnGw.base);
  assert.ok(sent.status >= 200 && sent.status < 300, `send answered ${sent.status}`);
  const id = sent.body.data.message_id;
  let verp = null;
  await until(() => {
    verp = verpOf(sinkDir, BOUNCED);
    return verp || fs.readdirSync(sinkDir).length;
  }, 'the message at the sink', 30000, 200);
  await until(() => (verp = verpOf(sinkDir, BOUNCED)), 'the sink to have the whole message', 2000, 100).catch(() => {});
  if (!verp) {
    // deliver.c's VERP has not landed: nothing can come back to the return path yet.
    console.log('skip the return path steps: the envelope sender is not a VERP address yet');
    return;
  }
  assert.equal(verp.id, id);

  const { ctx, p } = await openPage(problems);

  await step('a hard bounce that came back is a Hard bounce entry whose message link opens its timeline', async () => {
    assert.match(await smtpReport(bouncesPort, verp.address, hardBounceDsn(verp.address, BOUNCED)), /^250 /);
    await p.goto(`${returnGw.base}/#/suppressions`);
    await logIn(p, ADMIN);
    await p.getByRole('heading', { name: 'Suppressions', level: 1 }).waitFor();
    const row = suppressionRow(p, BOUNCED);
    await until(async () => {
      if (await row.count()) return true;
      await p.getByRole('button', { name: 'Search', exact: true }).click();
      return false;
    }, 'the bounce to suppress its recipient', 20000, 300);
    assert.equal((await row.getByRole('cell').nth(1).textContent()).trim(), 'Hard bounce');
    assert.match(await row.getByRole('cell').nth(4).textContent(), /5\.1\.1/);
    // A manual entry beside it, for the screenshot.
    await p.getByLabel('Addresses to suppress').fill('carol@example.net');
    await p.getByRole('button', { name: 'Add', exact: true }).click();
    await p.getByText('1 added.', { exact: true }).waitFor();
    await suppressionRow(p, 'carol@example.net').waitFor();
    await shot(p, 'suppressions.png', { fullPage: true });
    const reason = p.getByLabel('Reason', { exact: true });
    await reason.selectOption('hard_bounce');
    await until(async () => (await suppressionRow(p, 'carol@example.net').count()) === 0, 'the manual entry to leave');
    await row.waitFor();
    await reason.selectOption('complaint');
    await p.getByText('No suppressed address matches the filter.').waitFor();
    await p.getByLabel('Reason', { exact: true }).selectOption('');

    await row.getByRole('link', { name: `Message ${id}` }).click();
    const dialog = p.getByRole('dialog', { name: `Timeline of message ${id}` });
    await dialog.waitFor();
    const bounced = dialog.getByRole('row').filter({ hasText: 'Bounced' });
    await bounced.waitFor();
    const details = await bounced.getByRole('cell').nth(3).textContent();
    assert.match(details, /Hard bounce/);
    assert.match(details, /5\.1\.1/);
    assert.match(details, /Recipient address rejected: User unknown/);
    assert.match(details, /delivery status report by relay\.test/);
    await dialog.getByRole('button', { name: 'Close' }).click();
    await dialog.waitFor({ state: 'detached' });
  });

  await step('Returned reports lists an unreadable report; its text, collapsed, is shown as text', async () => {
    assert.match(await smtpReport(bouncesPort, verp.address, AUTO_REPLY), /^250 /);
    await p.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Returned reports', exact: true }).click();
    await p.getByRole('heading', { name: 'Returned reports', level: 1 }).waitFor();
    const row = p.getByRole('row').filter({ hasText: 'Unparsed' });
    await until(async () => {
      if (await row.count()) return true;
      await p.getByRole('button', { name: 'Refresh' }).click();
      return false;
    }, 'the auto-reply to be kept unparsed', 20000, 300);
    assert.match(await row.textContent(), /Null sender/);
    const pre = row.locator('pre');
    assert.equal(await pre.isVisible(), false, 'collapsed by default');
    await row.getByText('Show the report', { exact: false }).click();
    await pre.waitFor({ state: 'visible' });
    const text = await pre.textContent();
    assert.match(text, /I am away and will read your message/);
    assert.match(text, /<script>document\.title = "owned"<\/script>/);
    assert.equal(await p.locator('pre script').count(), 0, 'no markup from a report');
    assert.notEqual(await p.title(), 'owned');
    await row.getByRole('link', { name: `Message ${id}` }).waitFor();
    await shot(p, 'reports.png');
    await p.getByLabel('Status', { exact: true }).selectOption('done');
    await p.getByRole('row').filter({ hasText: 'Delivery status (DSN)' }).waitFor();
    await p.getByLabel('Status', { exact: true }).selectOption('unparsed');
    await p.getByText('Show the report', { exact: false }).click();
    await p.locator('pre').waitFor();

    // At 390 px the report's text scrolls inside its box, not the page.
    await p.setViewportSize({ width: 390, height: 844 });
    const width = await p.evaluate(() => document.documentElement.scrollWidth);
    assert.ok(width <= 390, `Returned reports scrollWidth ${width} > 390`);
    await p.setViewportSize({ width: 1280, height: 800 });
  });

  await step('Suppressions pages with Load more, the next page after the last entry shown', async () => {
    await p.goto(`${returnGw.base}/#/suppressions`);
    const many = Array.from({ length: 55 }, (_, i) => `user${i}@example.net`);
    await p.getByLabel('Addresses to suppress').fill(many.join('\n'));
    await p.getByRole('button', { name: 'Add', exact: true }).click();
    await p.getByText('55 added.', { exact: true }).waitFor();
    const rows = p.locator('table.suppressions tbody tr');
    await until(async () => (await rows.count()) === 50, 'the first page of 50');
    await p.getByText('Showing 50 addresses; there are more', { exact: false }).waitFor();
    const [next] = await Promise.all([
      p.waitForResponse((r) => r.url().includes('/api/suppressions?') && r.url().includes('before=')),
      p.getByRole('button', { name: 'Load more' }).click(),
    ]);
    assert.equal(next.status(), 200);
    await until(async () => (await rows.count()) === 57, 'the rest: 55 + carol + the bounce');
    assert.equal(await p.getByRole('button', { name: 'Load more' }).isVisible(), false);
    await suppressionRow(p, BOUNCED).waitFor();
    const width = await p.evaluate(() => document.documentElement.scrollWidth);
    assert.ok(width <= 1280, `Suppressions scrollWidth ${width} > 1280`);
    await p.setViewportSize({ width: 390, height: 844 });
    const narrow = await p.evaluate(() => document.documentElement.scrollWidth);
    assert.ok(narrow <= 390, `Suppressions scrollWidth ${narrow} > 390`);
  });
  await ctx.close();
}

// --- Monitoring › Overview ---------------------------------------------------------------

const HOUR_S = 3600;
const DAY_S = 86400;
const SERIES = ['accepted', 'delivered', 'bounced', 'dropped', 'refused'];

/** Sets the daemon's clock (the launcher's clock file, an offset in seconds) to t. */
function setClock(g, t) {
  fs.writeFileSync(path.join(g.dir, 'clock'), String(Math.round(t - Date.now() / 1000)));
}

/** One send request from `from` to every address of `to` (one personalization). */
async function sendMany(base, key, from, to, extra = {}, route = '/v5/mail/send') {
  const res = await fetch(`${base}${route}`, {
    method: 'POST',
    headers: { Authorization: `Bearer ${key}`, 'Content-Type': 'application/json' },
    body: JSON.stringify({
      from: { email: from }, subject: 'Hi', content: [{ type: 'text/plain', value: 'Hello' }],
      personalizations: [{ to: to.map((email) => ({ email })) }], ...extra,
    }),
    signal: AbortSignal.timeout(15000),
  });
  await res.arrayBuffer();
  return res.status;
}

/**
 * A month of mail on a gateway of its own, its clock moved from 29 days ago to now, hour by
 * hour for the last day: per step some recipients accepted (all delivered by the sink), some
 * requests refused (a From of no approved domain), now and then a suppressed recipient
 * (dropped), and in the current hour two hard bounces that came back to the return path.
 */
async function overviewData(g, key, manageKey, now) {
  const sinkDir = g.info.sink_dir;
  const queued = async () => {
    const res = await fetch(`${g.base}/api/messages?status=queued&limit=1`, { headers: { Authorization: `Bearer ${manageKey}` }, signal: AbortSignal.timeout(15000) });
    return (await res.json()).messages.length === 0;
  };
  async function batch(t, accepted, refused, dropped) {
    setClock(g, t);
    const to = Array.from({ length: accepted }, (_, i) => `r${i}@example.com`);
    assert.equal(await sendMany(g.base, key, 'news@acme.test', to), 200);
    for (let i = 0; i < refused; i++) assert.equal(await sendMany(g.base, key, 'x@stranger.test', ['bob@example.com']), 403);
    if (dropped) assert.equal(await sendMany(g.base, key, 'news@acme.test', ['gone@example.com']), 200);
    // Each message done in this hour before the clock moves on (a jump of a day while one
    // is being sent would let its lease lapse, and it would be sent twice).
    await until(queued, 'the queue to empty', 20000, 20);
  }
  const today = Math.floor(now / DAY_S) * DAY_S;
  for (let d = 29; d >= 2; d--) await batch(today - d * DAY_S + 9 * HOUR_S + (d % 5) * HOUR_S, 3 + ((d * 7) % 9), d % 3 ? 0 : 1 + (d % 4), d % 4 === 1);
  const hour = Math.floor(now / HOUR_S) * HOUR_S;
  for (let k = 23; k >= 1; k--) await batch(hour - k * HOUR_S + 300, 1 + ((k * 5) % 6), k % 4 ? 0 : 2, k % 6 === 2);
  await batch(now, 4, 1, false);
  for (const to of ['gone1@example.com', 'gone2@example.com']) {
    assert.equal(await sendMany(g.base, key, 'news@acme.test', [to]), 200);
    let verp = null;
    await until(() => (verp = verpOf(sinkDir, to)), `the message to ${to} at the sink`, 20000, 50);
    assert.match(await smtpReport(g.info.bounces_port, verp.address, hardBounceDsn(verp.address, to)), /^250 /);
  }
  // One left for tomorrow, so the queue is not empty.
  assert.equal(await sendMany(g.base, key, 'news@acme.test', ['later@example.com'], { send_at: now + DAY_S }, '/v3/mail/send'), 202);
}

/** Per series, the bars a chart draws (only counts above zero) and the sum of their values. */
async function barsOf(figure) {
  return figure.locator('rect.chart-bar').evaluateAll((rects) => {
    const out = {};
    for (const r of rects) {
      const k = r.dataset.series;
      out[k] = out[k] || { bars: 0, sum: 0 };
      out[k].bars += 1;
      out[k].sum += Number(r.dataset.value);
    }
    return out;
  });
}

function expectedBars(buckets) {
  const out = {};
  for (const k of SERIES) {
    const nonzero = buckets.filter((b) => b[k] > 0);
    if (nonzero.length) out[k] = { bars: nonzero.length, sum: nonzero.reduce((a, b) => a + b[k], 0) };
  }
  return out;
}

async function overviewSteps(problems) {
  overviewGw = new Gateway(['--sink', '--bounces', BOUNCES, '--account', ACCOUNT, '--admin', ADMIN, '--domain', 'acme.test']);
  // Twenty past the hour: the hour does not turn while the page and the API are compared.
  const now = Math.floor(Date.now() / 1000 / HOUR_S) * HOUR_S + 20 * 60;
  setClock(overviewGw, now - 29 * DAY_S);
  await step('a third gateway for the overview: a return path, an SMTP sink, its clock 29 days back', () => overviewGw.start());
  const g = overviewGw;

  let data;
  await step('a month of mail: accepted, delivered, refused, dropped, bounced at known hours', async () => {
    const before = await apiSession(ADMIN, g.base);
    assert.equal((await before.call('POST', '/api/suppressions', { emails: ['gone@example.com'] })).status, 200);
    const manage = await before.call('POST', '/api/keys', { name: 'watch', scopes: ['manage'], role: 'analytics' });
    assert.equal(manage.status, 201, JSON.stringify(manage.body));
    await overviewData(g, g.info.api_key, manage.body.key, now);
    const admin = await apiSession(ADMIN, g.base);
    assert.equal((await admin.call('POST', '/api/domains', { domain: 'news.acme.test' })).status, 201);
    assert.equal((await admin.call('POST', '/api/senders', { addresses: ['billing@acme.test'] })).status, 201);
    data = await until(async () => {
      const o = (await admin.call('GET', '/api/overview')).body;
      return o.hours[23].bounced === 2 && o.queue.queued === 0 ? o : null;
    }, 'the two bounces to be read and the queue to empty', 30000, 200);
    assert.equal(data.queue.scheduled, 1);
  });

  const { ctx, p } = await openPage(problems);
  await step('after login the Overview shows: charts of 24 hours and 30 days, as SVG, with a legend', async () => {
    await p.emulateMedia({ colorScheme: 'light' });
    await p.goto(`${g.base}/`);
    await logIn(p, ADMIN);
    await p.getByRole('heading', { name: 'Overview', level: 1 }).waitFor();
    const charts = p.locator('figure.chart');
    await charts.nth(1).waitFor();
    assert.equal(await charts.count(), 2);
    const svgs = p.getByRole('img', { name: /^Mail per (hour|day)/ });
    assert.equal(await svgs.count(), 2);
    assert.match(await svgs.nth(0).getAttribute('aria-label'), new RegExp(`^Mail per hour, last 24 hours: ${data.hours.reduce((a, b) => a + b.accepted, 0)} accepted`));
    for (const [i, buckets] of [[0, data.hours], [1, data.days]]) {
      assert.deepEqual(await barsOf(charts.nth(i)), expectedBars(buckets), `chart ${i}`);
      const legend = await charts.nth(i).locator('.chart-legend li').allTextContents();
      assert.deepEqual(legend, ['Accepted', 'Delivered', 'Bounced', 'Dropped', 'Refused']);
    }
  });

  await step('each chart\'s table alternative holds the numbers of every hour and day', async () => {
    const charts = p.locator('figure.chart');
    for (const [i, buckets] of [[0, data.hours], [1, data.days]]) {
      // Each summary names its chart to a screen reader: two bare "Show as table" would not.
      assert.match(await charts.nth(i).locator('summary').textContent(), /^Show as table: Mail per (hour|day)/);
      await charts.nth(i).locator('summary', { hasText: 'Show as table' }).click();
      const rows = charts.nth(i).locator('tbody tr');
      assert.equal(await rows.count(), buckets.length);
      // A cell without a digit (left blank for 0) reads as NaN, never as 0.
      const cells = await rows.evaluateAll((trs) => trs.map((tr) => [...tr.cells].slice(1).map((td) => (/\d/.test(td.textContent) ? Number(td.textContent.replace(/\D/g, '')) : NaN))));
      assert.deepEqual(cells, buckets.map((b) => SERIES.map((k) => b[k])));
      await charts.nth(i).locator('summary', { hasText: 'Show as table' }).click();
    }
  });

  await step('refusals by reason, the queue now and what needs attention, linked to their pages', async () => {
    const refused = p.getByRole('table', { name: 'Refusals by reason, last 30 days' });
    const row = refused.getByRole('row').filter({ hasText: 'domain_not_approved' });
    assert.equal((await row.getByRole('cell').nth(1).textContent()).trim(), String(data.refusals.domain_not_approved));
    const queue = p.getByRole('region', { name: 'Queue now' });
    assert.equal((await queue.locator('.stat').filter({ hasText: 'Scheduled' }).locator('.stat-value').textContent()).trim(), '1');
    const attention = p.getByRole('region', { name: 'Needs attention' });
    assert.equal(await attention.getByRole('link', { name: 'news.acme.test' }).getAttribute('href'), '#/domains');
    await attention.getByText('billing@acme.test').waitFor();
    assert.equal(await attention.getByRole('link', { name: 'billing@acme.test' }).getAttribute('href'), '#/mail-settings');
  });

  await step('the charts read in the light and the dark scheme (colours from CSS custom properties)', async () => {
    const look = () => p.evaluate(() => ({
      page: getComputedStyle(document.body).backgroundColor,
      card: getComputedStyle(document.querySelector('.card')).backgroundColor,
      bars: ['accepted', 'delivered', 'bounced', 'dropped', 'refused'].map((k) => getComputedStyle(document.querySelector(`rect.bar-${k}`)).fill),
      label: getComputedStyle(document.querySelector('.chart-label')).fill,
    }));
    await p.emulateMedia({ colorScheme: 'light' });
    // The whole page in the window: a full-page capture would draw the sticky header midway.
    await p.setViewportSize({ width: 1280, height: await p.evaluate(() => document.documentElement.scrollHeight) });
    const light = await look();
    await shot(p, 'overview-light.png');
    await p.emulateMedia({ colorScheme: 'dark' });
    const dark = await look();
    await shot(p, 'overview-dark.png');
    await p.emulateMedia({ colorScheme: 'light' });
    const lum = (rgb) => {
      const [r, gg, b] = rgb.match(/\d+/g).map(Number).map((c) => c / 255).map((c) => (c <= 0.03928 ? c / 12.92 : ((c + 0.055) / 1.055) ** 2.4));
      return 0.2126 * r + 0.7152 * gg + 0.0722 * b;
    };
    const contrast = (a, b) => (Math.max(lum(a), lum(b)) + 0.05) / (Math.min(lum(a), lum(b)) + 0.05);
    assert.ok(lum(light.page) > 0.8 && lum(dark.page) < 0.05, `page ${light.page} / ${dark.page}`);
    for (const scheme of [light, dark]) {
      assert.equal(new Set(scheme.bars).size, 5, `five distinct series colours: ${scheme.bars}`);
      // Each bar and the axis labels stand out from the card they are drawn on (WCAG 1.4.11: 3:1).
      for (const c of [...scheme.bars, scheme.label]) assert.ok(contrast(c, scheme.card) >= 3, `${c} on ${scheme.card}`);
    }
    assert.notDeepEqual(light.bars, dark.bars);
  });

  await step('at 390 px the Overview has no horizontal page overflow (a chart scrolls in its frame)', async () => {
    await p.setViewportSize({ width: 390, height: 844 });
    await p.reload();
    await p.locator('figure.chart').nth(1).waitFor();
    const width = await p.evaluate(() => document.documentElement.scrollWidth);
    assert.ok(width <= 390, `Overview scrollWidth ${width} > 390`);
  });
  await ctx.close();
}

async function cleanup() {
  await stopReceiver();
  if (browser) await withTimeout(browser.close(), 15000, 'browser close').catch(() => {});
  browser = null;
  for (const g of [gw, returnGw, overviewGw]) {
    if (!g) continue;
    await g.stop();
    if (!process.env.POSTERN_E2E_KEEP) g.cleanup();
  }
}

async function main() {
  const timer = setTimeout(async () => {
    console.error(`FAIL: the whole test took longer than ${WHOLE_TEST_MS / 1000} s`);
    await cleanup().catch(() => {});
    process.exit(1);
  }, WHOLE_TEST_MS);
  let failed = false;
  try {
    await run();
  } catch (err) {
    failed = true;
    console.error(`FAIL: ${err && err.stack ? err.stack : err}`);
    if (failureShot && gw) {
      const p = path.join(gw.dir, 'failure.png');
      await failureShot.screenshot({ path: p, fullPage: true }).then(() => {
        process.env.POSTERN_E2E_KEEP = '1';
        console.error(`screenshot at failure: ${p}`);
      }).catch(() => {});
    }
    if (gw) console.error(`--- postern serve log (last 40 lines) ---\n${gw.log().split('\n').slice(-40).join('\n')}`);
  } finally {
    await cleanup();
    clearTimeout(timer);
  }
  const secs = ((Date.now() - started) / 1000).toFixed(1);
  console.log(`\n${results.length} steps passed${failed ? ', then a failure' : ''} in ${secs} s; screenshots in ${path.relative(process.cwd(), SHOTS) || SHOTS}`);
  process.exit(failed ? 1 : 0);
}

for (const sig of ['SIGINT', 'SIGTERM']) {
  process.on(sig, async () => {
    await cleanup().catch(() => {});
    process.exit(130);
  });
}

main();
