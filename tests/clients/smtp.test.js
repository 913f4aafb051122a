'use strict';
// nodemailer (pinned in package.json) against Postern's SMTP front end (issue 16), configured
// the way its users configure any SMTP relay: STARTTLS required, user `apikey`, the API key as
// the password. What was sent is compared with what reached the relay, parsed back from
// smtp-sink's files with mailparser; refusals come back as nodemailer's errors with the SMTP
// reply code.
//
//   POSTERN_BIN=build/postern node tests/clients/smtp.test.js

const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');
const { test, before, after } = require('node:test');
const nodemailer = require('nodemailer');
const { simpleParser } = require('mailparser');
const { Gateway, PASSWORD, until } = require('../e2e/harness.js');

const ACCOUNT = 'acme';
const ADMIN = 'admin@acme.test';
const FROM = 'news@acme.test'; // the one authorized sender (sender authorization on)
const STRANGER = 'stranger@acme.test'; // in the verified domain, but not authorized

let gw = null;
let cookie = null;
let csrf = null;

async function api(method, urlPath, body) {
  const r = await fetch(gw.base + urlPath, {
    method,
    headers: {
      'Content-Type': 'application/json',
      ...(cookie ? { Cookie: cookie, 'X-CSRF-Token': csrf } : {}),
    },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await r.text();
  return { status: r.status, json: text ? JSON.parse(text) : null, headers: r.headers };
}

/** Logs in as the Admin, lists FROM as a verified sender and turns sender authorization on. */
async function authorizeOnlyFrom() {
  const login = await api('POST', '/api/session', { account: ACCOUNT, email: ADMIN, password: PASSWORD });
  assert.equal(login.status, 200, JSON.stringify(login.json));
  cookie = login.headers.get('set-cookie').split(';', 1)[0];
  csrf = login.json.csrf_token;
  const added = await api('POST', '/api/senders', { addresses: [FROM] });
  assert.equal(added.status, 201, JSON.stringify(added.json));
  const verified = await api('POST', `/api/senders/${added.json.added[0].id}/verify`);
  assert.equal(verified.status, 200, JSON.stringify(verified.json));
  const on = await api('PUT', '/api/settings/sender-auth', { enabled: true, password: PASSWORD });
  assert.equal(on.status, 200, JSON.stringify(on.json));
}

/** A transport as nodemailer's documentation configures an SMTP relay (the certificate is
 * the test's self-signed one, hence rejectUnauthorized: false). */
function transport(pass) {
  return nodemailer.createTransport({
    host: '127.0.0.1',
    port: gw.smtpPort,
    secure: false,
    requireTLS: true,
    tls: { rejectUnauthorized: false },
    auth: { user: 'apikey', pass },
  });
}

async function refused(pass, mail) {
  const t = transport(pass);
  try {
    const info = await t.sendMail(mail).then((i) => i, (e) => e);
    assert.ok(info instanceof Error, `accepted: ${JSON.stringify(info)}`);
    return info;
  } finally {
    t.close();
  }
}

/** Every message in the sink with rcpt among its envelope recipients, parsed. Read once the
 * API shows the message sent: smtp-sink has written the file before its 250. */
async function delivered(rcpt) {
  const dir = gw.info.sink_dir;
  const out = [];
  for (const name of fs.readdirSync(dir)) {
    const raw = fs.readFileSync(path.join(dir, name));
    const m = await simpleParser(raw);
    const env = m.headerLines.filter((h) => h.key === 'x-rcpt-args')
      .map((h) => h.line.replace(/^[^:]*:\s*<?([^>]*)>?.*$/, '$1').toLowerCase());
    if (env.includes(rcpt)) out.push(m);
  }
  return out;
}

before(async () => {
  gw = await new Gateway(['--sink', '--smtp', '--account', ACCOUNT, '--admin', ADMIN,
    '--domain', 'acme.test']).start();
  await authorizeOnlyFrom();
});

after(async () => {
  if (!gw) return;
  await gw.stop();
  if (process.exitCode) console.error(`serve.log (end):\n${gw.log().split('\n').slice(-40).join('\n')}`);
  gw.cleanup();
});

test('nodemailer: a message with HTML and an attachment arrives as sent, Bcc only on the envelope', async () => {
  const attachment = Buffer.from(Array.from({ length: 1024 }, (_, i) => i % 256));
  const mail = {
    from: `"Acme News" <${FROM}>`,
    to: 'bob@example.net',
    bcc: 'secret@example.net',
    subject: 'Grüße aus Köln — nodemailer',
    text: 'Hallo Bob,\nschön dich zu sehen.\n',
    html: '<p>Hallo <b>Bob</b>, schön dich zu sehen.</p>',
    attachments: [{ filename: 'data.bin', content: attachment, contentType: 'application/octet-stream' }],
  };
  const t = transport(gw.info.api_key);
  let info;
  try {
    info = await t.sendMail(mail);
  } finally {
    t.close();
  }
  assert.deepEqual([...info.accepted].sort(), ['bob@example.net', 'secret@example.net']);
  const queued = /^250 2\.0\.0 Ok: queued as (\S+)$/.exec(info.response);
  assert.ok(queued, info.response);
  const id = queued[1];
  const m = await until(async () => {
    const r = await api('GET', `/api/messages/${id}`);
    return r.status === 200 && r.json.status === 'sent' ? r.json : null;
  }, `message ${id} sent`, 20000);
  assert.equal(m.from, FROM);
  const listed = await api('GET', '/api/messages?limit=1000');
  assert.equal(listed.status, 200);
  assert.equal(listed.json.messages.find((x) => x.id === id)?.source, 'smtp');

  const [got] = await delivered('bob@example.net');
  assert.ok(got, 'nothing delivered to bob@example.net');
  assert.equal(got.subject, mail.subject);
  assert.equal(got.from.value[0].address, FROM);
  assert.equal(got.html, mail.html);
  assert.equal(got.text, mail.text);
  assert.equal(got.attachments.length, 1);
  assert.equal(got.attachments[0].filename, 'data.bin');
  assert.ok(got.attachments[0].content.equals(attachment), 'attachment bytes differ');
  assert.ok(got.headers.has('dkim-signature'), 'not DKIM-signed');
  // The Bcc recipient is on the envelope of a delivered message, and in no delivered header.
  const hidden = await delivered('secret@example.net');
  assert.ok(hidden.length >= 1, 'nothing delivered to the Bcc recipient');
  for (const d of [got, ...hidden]) {
    assert.equal(d.headers.has('bcc'), false);
    const lines = d.headerLines.filter((h) => h.key !== 'x-rcpt-args');
    assert.ok(!lines.some((h) => h.line.includes('secret@example.net')), 'the Bcc address is in a header');
  }
});

test('nodemailer: a wrong key is refused with 535', async () => {
  const err = await refused('not-a-key', { from: FROM, to: 'bob@example.net', subject: 'x', text: 'x' });
  assert.equal(err.responseCode, 535, String(err));
  assert.equal(err.code, 'EAUTH', String(err));
});

test('nodemailer: a From the account may not use is refused with 550 sender_not_authorized', async () => {
  const err = await refused(gw.info.api_key, { from: STRANGER, to: 'bob@example.net', subject: 'x', text: 'x' });
  assert.equal(err.responseCode, 550, String(err));
  assert.match(err.response, /^550 5\.7\.1 sender_not_authorized/);
});

test('nodemailer: an authorized envelope does not cover an unauthorized From header', async () => {
  const err = await refused(gw.info.api_key, {
    from: STRANGER,
    to: 'bob@example.net',
    envelope: { from: FROM, to: ['bob@example.net'] },
    subject: 'x',
    text: 'x',
  });
  assert.equal(err.responseCode, 550, String(err));
  assert.match(err.response, /sender_not_authorized/);
});
