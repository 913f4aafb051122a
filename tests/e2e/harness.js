'use strict';
// Helpers for the panel's end-to-end test: run the real `postern` binary, start the daemon
// on free loopback ports with a temporary database, launch Debian's Chromium. Everything
// started here is stopped by its PID, and every wait is bounded.

const { spawn, execFile } = require('node:child_process');
const fs = require('node:fs');
const net = require('node:net');
const os = require('node:os');
const path = require('node:path');

const ROOT = path.resolve(__dirname, '..', '..');
const BIN = path.resolve(process.env.POSTERN_BIN || path.join(ROOT, 'build', 'postern'));
const PASSWORD = 'correct horse battery';

const CHROMIUM_ARGS = [
  '--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking',
  '--disable-component-update', '--disable-sync', '--no-first-run', '--disable-quic',
  '--disable-dev-shm-usage',
];

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** A TCP port on 127.0.0.1 that was free a moment ago (the kernel picks it). */
function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

/** Runs `postern ARGS` with POSTERN_PASSWORD set; resolves to stdout, rejects on failure. */
function cli(args, { password = PASSWORD, timeout = 60000 } = {}) {
  const env = { ...process.env };
  delete env.POSTERN_PASSWORD;
  if (password !== null) env.POSTERN_PASSWORD = password;
  return new Promise((resolve, reject) => {
    execFile(BIN, args, { env, timeout, maxBuffer: 1 << 20 }, (err, stdout, stderr) => {
      if (err) reject(new Error(`postern ${args.join(' ')} failed (${err.code ?? err.signal}): ${stderr}`));
      else resolve(stdout);
    });
  });
}

/** Polls fn until it returns a truthy value; throws `what` after timeoutMs. */
async function until(fn, what, timeoutMs = 10000, intervalMs = 50) {
  const deadline = Date.now() + timeoutMs;
  let last;
  for (;;) {
    try {
      last = await fn();
      if (last) return last;
    } catch (err) {
      last = err;
    }
    if (Date.now() > deadline) {
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${last instanceof Error ? `: ${last.message}` : ''}`);
    }
    await sleep(intervalMs);
  }
}

/** Rejects with `what` when promise does not settle within ms. */
function withTimeout(promise, ms, what) {
  let timer;
  return Promise.race([
    promise,
    new Promise((_, reject) => {
      timer = setTimeout(() => reject(new Error(`${what} did not finish within ${ms} ms`)), ms);
    }),
  ]).finally(() => clearTimeout(timer));
}

class Gateway {
  constructor() {
    this.dir = fs.mkdtempSync(path.join(os.tmpdir(), 'postern-e2e-'));
    this.db = path.join(this.dir, 'postern.db');
    this.logPath = path.join(this.dir, 'serve.log');
    this.proc = null;
    this.port = null;
  }

  get base() {
    return `http://127.0.0.1:${this.port}`;
  }

  async start(timeoutMs = 15000) {
    this.port = await freePort();
    // DNS goes to a loopback port where nothing answers: domain checks never leave the box.
    const dnsPort = await freePort();
    const log = fs.openSync(this.logPath, 'a');
    this.proc = spawn(BIN, [
      'serve', '--db', this.db, '--listen', `127.0.0.1:${this.port}`,
      '--relay', `outbox:${path.join(this.dir, 'outbox')}`, '--dns', `127.0.0.1:${dnsPort}`,
    ], { stdio: ['ignore', log, log] });
    fs.closeSync(log);
    let exited = null;
    this.proc.on('exit', (code, signal) => {
      exited = code ?? signal;
    });
    await until(async () => {
      if (exited !== null) throw new Error(`postern serve exited (${exited}):\n${this.log()}`);
      const res = await fetch(`${this.base}/`, { signal: AbortSignal.timeout(1000) });
      return res.status === 200;
    }, 'postern serve to answer GET /', timeoutMs, 100);
    return this;
  }

  log() {
    try {
      return fs.readFileSync(this.logPath, 'utf8');
    } catch {
      return '';
    }
  }

  /** SIGTERM, then SIGKILL after timeoutMs; by PID only. */
  async stop(timeoutMs = 10000) {
    const p = this.proc;
    this.proc = null;
    if (!p || p.exitCode !== null || p.signalCode !== null) return;
    const gone = new Promise((resolve) => p.once('exit', resolve));
    p.kill('SIGTERM');
    try {
      await withTimeout(gone, timeoutMs, 'postern serve shutdown');
    } catch {
      p.kill('SIGKILL');
      await withTimeout(gone, 5000, 'postern serve kill').catch(() => {});
    }
  }

  cleanup() {
    fs.rmSync(this.dir, { recursive: true, force: true });
  }
}

module.exports = { BIN, ROOT, PASSWORD, CHROMIUM_ARGS, Gateway, cli, freePort, until, withTimeout, sleep };
