'use strict';
// The official Node clients against the real daemon: Netcore's `pepipost` and SendGrid's
// `@sendgrid/mail`, exactly as their users write them, pointed at Postern by base URL only.
// Each feature is a case of its own and is proven on the delivered message, parsed back
// from smtp-sink's files (issue 15: every field honoured or refused).
//
//   POSTERN_BIN=build/postern node tests/clients/clients.test.js

const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');
const { test, before, after } = require('node:test');
const pepipost = require('pepipost');
const sgMail = require('@sendgrid/mail');
const { simpleParser } = require('mailparser');
const { Gateway, PASSWORD, until } = require('../e2e/harness.js');

const ACCOUNT = 'acme';
const ADMIN = 'admin@acme.test';
const FROM = 'news@acme.test';
const HOUR = 3600;

let gw = null;
let clockOffset = 0;
let cookie = null;
const parsed = new Map(); // smtp-sink file name → parsed message

// --- The gateway, its clock and its sink ----------------------------------------------

/** The daemon's time: the real clock plus what the test clock file adds. */
function daemonNow() {
  return Math.floor(Date.now() / 1000) + clockOffset;
}

/** Moves the daemon's clock forward through the test clock file, never by sleeping. */
function advanceClock(seconds) {
  clockOffset += seconds;
  fs.writeFileSync(gw.info.clock, String(clockOffset));
}

async function logIn() {
  const r = await fetch(`${gw.base}/api/session`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ account: ACCOUNT, email: ADMIN, password: PASSWORD }),
  });
  assert.equal(r.status, 200, await r.text());
  cookie = r.headers.get('set-cookie').split(';', 1)[0];
}

/** GET on the management API as the Admin; logs in again when the session has expired
 * (sessions age with the test clock). */
async function adminGet(urlPath) {
  for (let attempt = 0; attempt < 2; attempt += 1) {
    if (!cookie) await logIn();
    const r = await fetch(gw.base + urlPath, { headers: { Cookie: cookie } });
    if (r.status === 401) {
      cookie = null;
      continue;
    }
    const text = await r.text();
    assert.equal(r.status, 200, `GET ${urlPath}: ${text}`);
    return JSON.parse(text);
  }
  throw new Error(`GET ${urlPath}: still 401 after logging in again`);
}

/** The sink's files that smtp-sink has finished writing: it holds a file open while the
 * transaction lasts, so one among its open descriptors is left out for now. */
function completeSinkFiles() {
  const dir = gw.info.sink_dir;
  const names = fs.readdirSync(dir);
  const held = new Set();
  const fds = `/proc/${gw.info.sink_pid}/fd`;
  try {
    for (const fd of fs.readdirSync(fds)) {
      try {
        held.add(fs.readlinkSync(path.join(fds, fd)));
      } catch {
        // closed meanwhile
      }
    }
  } catch {
    // the sink has exited: nothing is held
  }
  const base = fs.realpathSync(dir);
  return names.filter((n) => !held.has(path.join(base, n)));
}

/** Every message the sink holds, parsed, each with env: its envelope recipients. */
async function sinkMessages() {
  for (const name of completeSinkFiles()) {
    if (parsed.has(name)) continue;
    const m = await simpleParser(fs.readFileSync(path.join(gw.info.sink_dir, name)));
    m.env = m.headerLines.filter((h) => h.key === 'x-rcpt-args')
      .map((h) => h.line.replace(/^[^:]*:\s*<?([^>]*)>?.*$/, '$1').toLowerCase());
    parsed.set(name, m);
  }
  return [...parsed.values()];
}

/** The delivered messages with rcpt among their envelope recipients. */
async function deliveredTo(rcpt) {
  return (await sinkMessages()).filter((m) => m.env.includes(rcpt));
}

/** Waits (bounded) until count messages have reached rcpt; returns them. */
async function waitDelivered(rcpt, count = 1, timeoutMs = 20000) {
  return until(async () => {
    const got = await deliveredTo(rcpt);
    return got.length >= count ? got : null;
  }, `${count} message(s) delivered to ${rcpt}`, timeoutMs);
}

async function waitStatus(id, ...statuses) {
  return until(async () => {
    const m = await adminGet(`/api/messages/${id}`);
    return statuses.includes(m.status) ? m : null;
  }, `message ${id} to reach ${statuses.join('|')}`, 20000);
}

// --- The clients, as their users write them --------------------------------------------

function address(Model, email, name) {
  const a = new Model();
  a.email = email;
  if (name !== undefined) a.name = name;
  return a;
}

function pepiAttachment(name, text) {
  const a = new pepipost.Attachments();
  a.name = name;
  a.content = Buffer.from(text).toString('base64');
  return a;
}

/** A Netcore message built the way pepipost's README does; personalizations are
 * [{to, attributes?, attachments?}], extra is further top-level fields. */
function pepiBody({ subject = 'Hello', html = '<p>Hello</p>', personalizations, ...extra }) {
  const body = new pepipost.Send();
  body.from = address(pepipost.From, FROM, 'Acme');
  body.subject = subject;
  body.content = [new pepipost.Content()];
  body.content[0].type = pepipost.TypeEnum.HTML;
  body.content[0].value = html;
  body.personalizations = personalizations.map(({ to, ...rest }) => {
    const p = new pepipost.Personalizations();
    p.to = [address(pepipost.EmailStruct, to)];
    Object.assign(p, rest);
    return p;
  });
  Object.assign(body, extra);
  return body;
}

/** Sends through pepipost; resolves to the message id of the 200 answer. */
async function pepiSend(body) {
  const r = await pepipost.MailSendController.createGeneratethemailsendrequest(body);
  assert.equal(r.status, 'success', JSON.stringify(r));
  return r.data.message_id;
}

/** Sends through pepipost expecting a refusal; resolves to the Netcore error body. */
async function pepiRefused(body) {
  const err = await pepipost.MailSendController.createGeneratethemailsendrequest(body)
    .then((r) => assert.fail(`accepted: ${JSON.stringify(r)}`), (e) => e);
  assert.equal(err.errorCode, 400, JSON.stringify(err));
  return JSON.parse(err.errorResponse);
}

/** Sends through @sendgrid/mail; resolves to [response, body] of the 2xx answer. A refusal
 * rejects with the client's ResponseError, its message made to show the answer's body. */
function sgSend(fields) {
  return sgMail.send({ from: { email: FROM, name: 'Acme' }, subject: 'Hello', text: 'Hello', ...fields })
    .catch((err) => {
      if (err.response) err.message = `${err.code} ${JSON.stringify(err.response.body)}`;
      throw err;
    });
}

async function sgRefused(fields) {
  const err = await sgSend(fields).then((r) => assert.fail(`accepted: ${r[0].statusCode}`), (e) => e);
  assert.equal(err.code, 400, String(err));
  return err.response.body;
}

// --- Cases -----------------------------------------------------------------------------

before(async () => {
  gw = await new Gateway(['--sink', '--account', ACCOUNT, '--admin', ADMIN,
    '--domain', 'acme.test']).start();
  // Base URL only: what a user of each client changes to move off the hosted service.
  pepipost.Configuration.BASEURI = `${gw.base}/v5`;
  pepipost.Configuration.apiKey = gw.info.api_key;
  sgMail.setApiKey(gw.info.api_key); // resets the base URL, so it goes first
  sgMail.client.setDefaultRequest('baseUrl', `${gw.base}/`);
});

after(async () => {
  if (!gw) return;
  await gw.stop();
  if (process.exitCode) console.error(`serve.log (end):\n${gw.log().split('\n').slice(-40).join('\n')}`);
  gw.cleanup();
});

test('pepipost: a minimal message is delivered', async () => {
  const to = 'pepi-min@example.net';
  const id = await pepiSend(pepiBody({ subject: 'Minimal', personalizations: [{ to }] }));
  const [m] = await waitDelivered(to);
  assert.equal(m.subject, 'Minimal');
  assert.equal(m.from.value[0].address, FROM);
  assert.match(m.html, /<p>Hello<\/p>/);
  assert.equal(m.messageId, `<${id}@acme.test>`);
});

test('pepipost: every unset field sent as null (model constructors) is accepted', async () => {
  // Built from objects, pepipost's models send each field they do not have as null.
  const to = 'pepi-nulls@example.net';
  const body = new pepipost.Send({
    from: new pepipost.From({ email: FROM }),
    subject: 'Nulls',
    content: [new pepipost.Content({ type: 'html', value: '<p>Nulls</p>' })],
    personalizations: [new pepipost.Personalizations({ to: [new pepipost.EmailStruct({ email: to })] })],
  });
  body.settings = new pepipost.Settings({});
  assert.equal(JSON.parse(JSON.stringify(body)).template_id, null);
  await pepiSend(body);
  const [m] = await waitDelivered(to);
  assert.equal(m.subject, 'Nulls');
});

test('@sendgrid/mail: a minimal message is delivered', async () => {
  const to = 'sg-min@example.net';
  const [r] = await sgSend({ to, subject: 'Minimal', text: 'Plain hello', html: '<p>Html hello</p>' });
  assert.equal(r.statusCode, 202);
  const id = r.headers['x-message-id'];
  assert.ok(id, 'X-Message-Id header');
  const [m] = await waitDelivered(to);
  assert.equal(m.subject, 'Minimal');
  assert.equal(m.text.trim(), 'Plain hello');
  assert.match(m.html, /<p>Html hello<\/p>/);
  assert.equal((await waitStatus(id, 'sent')).recipients, 1);
});

test('pepipost: attributes are substituted into the subject and content', async () => {
  const ann = 'pepi-attr-ann@example.net';
  const bob = 'pepi-attr-bob@example.net';
  await pepiSend(pepiBody({
    subject: 'Hello [% name %]',
    html: '<p>Hi [%name%], [% count %] new.[% missing %]</p>',
    personalizations: [{ to: ann, attributes: { name: 'Ann', count: 3 } },
      { to: bob, attributes: { name: 'Bob', count: 0 } }],
  }));
  const [a] = await waitDelivered(ann);
  const [b] = await waitDelivered(bob);
  assert.equal(a.subject, 'Hello Ann');
  assert.match(a.html, /<p>Hi Ann, 3 new\.<\/p>/);
  assert.equal(b.subject, 'Hello Bob');
  assert.match(b.html, /<p>Hi Bob, 0 new\.<\/p>/);
});

test('@sendgrid/mail: substitutions are replaced in the subject and content', async () => {
  // The client wraps each key in {{ }} before sending: {"{{name}}": "Ann"}.
  const to = 'sg-subst@example.net';
  await sgSend({
    subject: 'Hello {{name}}',
    text: 'Dear {{name}}, code {{code}}.',
    personalizations: [{ to, substitutions: { name: 'Ann', code: 42 } }],
  });
  const [m] = await waitDelivered(to);
  assert.equal(m.subject, 'Hello Ann');
  assert.equal(m.text.trim(), 'Dear Ann, code 42.');
});

test('pepipost: top-level bcc is a blind copy of every personalization, envelope only', async () => {
  const one = 'pepi-bcc-1@example.net';
  const two = 'pepi-bcc-2@example.net';
  const blind = 'pepi-bcc-blind@example.net';
  const id = await pepiSend(pepiBody({
    subject: 'Bcc', personalizations: [{ to: one }, { to: two }],
    bcc: [address(pepipost.EmailStruct, blind, 'Blind')],
  }));
  const copies = await waitDelivered(blind, 2);
  for (const m of copies) {
    assert.ok(m.env.includes(one) !== m.env.includes(two), `one personalization each: ${m.env}`);
    assert.equal(m.bcc, undefined, 'no Bcc header');
    const headers = m.headerLines.filter((h) => !/^(x-rcpt-args|received)$/.test(h.key));
    assert.ok(!headers.some((h) => h.line.toLowerCase().includes(blind)),
      'the blind address is in no header');
  }
  const m = await waitStatus(id, 'sent');
  assert.equal(m.recipients, 4, 'two recipients and a blind copy of each');
});

test('pepipost: per-personalization attachments go to that personalization only', async () => {
  const one = 'pepi-att-1@example.net';
  const two = 'pepi-att-2@example.net';
  await pepiSend(pepiBody({
    subject: 'Attachments',
    attachments: [pepiAttachment('all.txt', 'for everyone')],
    personalizations: [{ to: one, attachments: [pepiAttachment('one.txt', 'only for one')] },
      { to: two }],
  }));
  const [a] = await waitDelivered(one);
  const [b] = await waitDelivered(two);
  assert.deepEqual(a.attachments.map((x) => [x.filename, x.content.toString()]),
    [['all.txt', 'for everyone'], ['one.txt', 'only for one']]);
  assert.deepEqual(b.attachments.map((x) => [x.filename, x.content.toString()]),
    [['all.txt', 'for everyone']]);
});

/** A message scheduled an hour ahead: stored as scheduled, not delivered while a message
 * sent after it is, then delivered once the daemon's clock passes its time. */
async function heldUntilDue(to, send, marker) {
  const due = daemonNow() + HOUR;
  const id = await send(due);
  const held = await adminGet(`/api/messages/${id}`);
  assert.equal(held.status, 'scheduled', 'stored as scheduled');
  assert.ok(held.send_at, `send_at shown: ${JSON.stringify(held)}`);
  // The queue has worked past it: a later message went out, this one did not.
  await sgSend({ to: marker, subject: 'Marker' });
  await waitDelivered(marker);
  assert.deepEqual(await deliveredTo(to), [], 'delivered before its time');
  advanceClock(HOUR + 1);
  // Bounded generously: the scheduler may look for due messages only every few seconds.
  await waitDelivered(to, 1, 60000);
  await waitStatus(id, 'sent');
}

test('pepipost: schedule holds the message until its time', async () => {
  const to = 'pepi-sched@example.net';
  await heldUntilDue(to, (due) => pepiSend(pepiBody({
    subject: 'Scheduled', personalizations: [{ to }], schedule: due,
  })), 'pepi-sched-marker@example.net');
});

test('@sendgrid/mail: send_at holds the message until its time', async () => {
  const to = 'sg-sched@example.net';
  await heldUntilDue(to, async (due) => {
    const [r] = await sgSend({ to, subject: 'Scheduled', sendAt: due });
    assert.equal(r.statusCode, 202);
    return r.headers['x-message-id'];
  }, 'sg-sched-marker@example.net');
});

test('@sendgrid/mail: sandbox mode answers 200 with an empty body and keeps nothing', async () => {
  const to = 'sg-sandbox@example.net';
  const ids = async () => (await adminGet('/api/messages?limit=100')).messages.map((m) => m.id);
  const statsBefore = await adminGet('/api/stats');
  const idsBefore = await ids();
  const [r, body] = await sgSend({ to, subject: 'Sandbox', mailSettings: { sandboxMode: { enable: true } } });
  assert.equal(r.statusCode, 200);
  assert.equal(body, '');
  const stats = await adminGet('/api/stats');
  assert.equal(stats.sandbox, (statsBefore.sandbox ?? 0) + 1, JSON.stringify(stats));
  assert.equal(stats.accepted, statsBefore.accepted);
  assert.deepEqual(await ids(), idsBefore, 'no message stored');
  const marker = 'sg-sandbox-marker@example.net';
  await sgSend({ to: marker, subject: 'Marker' });
  await waitDelivered(marker);
  assert.deepEqual(await deliveredTo(to), [], 'the sandbox message was delivered');
});

test('pepipost: a refusal names the field (settings.click_track)', async () => {
  const settings = new pepipost.Settings();
  settings.clickTrack = true;
  const err = await pepiRefused(pepiBody({
    personalizations: [{ to: 'pepi-refused@example.net' }], settings,
  }));
  assert.equal(err.status, 'error');
  assert.equal(err.error[0].code, 'invalid_request');
  assert.equal(err.error[0].field, 'settings.click_track');
});

test('@sendgrid/mail: a refusal names the field (template_id)', async () => {
  const body = await sgRefused({ to: 'sg-refused@example.net', templateId: 'd-123' });
  assert.equal(body.errors[0].code, 'invalid_request');
  assert.equal(body.errors[0].field, 'template_id');
});
