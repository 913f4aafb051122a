#!/usr/bin/env node
// Checks webhook requests with the official verifiers, so Postern's signatures are judged by
// the code its users run. Reads JSON lines on stdin, each
//   {"format": "standard" | "sendgrid", "secret" | "public_key", "headers": {...}, "body": "..."}
// and prints one JSON line per input: {"ok": true} or {"ok": false, "error": "..."}. Exits 0.
'use strict';

const readline = require('readline');
const { Webhook } = require('standardwebhooks');
const { EventWebhook, EventWebhookHeader } = require('@sendgrid/eventwebhook');

// A header by its name in any case, as an HTTP receiver would read it.
function header(headers, name) {
  const want = name.toLowerCase();
  for (const [key, value] of Object.entries(headers || {})) {
    if (key.toLowerCase() === want) return value;
  }
  return undefined;
}

// Throws when the request does not verify, with the library's own message.
function check(req) {
  if (typeof req.body !== 'string') throw new Error('body must be a string');
  if (req.format === 'standard') {
    new Webhook(req.secret).verify(req.body, req.headers || {});
    return;
  }
  if (req.format === 'sendgrid') {
    const ew = new EventWebhook();
    const key = ew.convertPublicKeyToECDSA(req.public_key);
    const signature = header(req.headers, EventWebhookHeader.SIGNATURE());
    const timestamp = header(req.headers, EventWebhookHeader.TIMESTAMP());
    if (!signature || !timestamp) throw new Error('missing signature headers');
    if (!ew.verifySignature(key, req.body, signature, timestamp))
      throw new Error('signature does not verify');
    return;
  }
  throw new Error(`unknown format ${JSON.stringify(req.format)}`);
}

function verdict(line) {
  try {
    check(JSON.parse(line));
    return { ok: true };
  } catch (e) {
    return { ok: false, error: String((e && e.message) || e) };
  }
}

const lines = readline.createInterface({ input: process.stdin, crlfDelay: Infinity });
lines.on('line', (line) => {
  if (line.trim() === '') return;
  process.stdout.write(JSON.stringify(verdict(line)) + '\n');
});
lines.on('close', () => {
  process.exitCode = 0;
});
