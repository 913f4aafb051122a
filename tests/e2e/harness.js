'use strict';
// Helpers for the panel's end-to-end test: run the real `postern` binary, start the daemon
// through the integration tests' launcher (tests/integration/harness.py serve) with a
// temporary database, launch Debian's Chromium. Everything started here is stopped by its
// PID, and every wait is bounded.

const { spawn, execFile } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');

const ROOT = path.resolve(__dirname, '..', '..');
const BIN = path.resolve(process.env.POSTERN_BIN || path.join(ROOT, 'build', 'postern'));
const LAUNCHER = path.join(ROOT, 'tests', 'integration', 'harness.py');
const PASSWORD = 'correct horse battery';

const CHROMIUM_ARGS = [
  '--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking',
  '--disable-component-update', '--disable-sync', '--no-first-run', '--disable-quic',
  '--disable-dev-shm-usage',
];

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

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

/**
 * A gateway started by the integration tests' launcher (`harness.py serve`), so that the
 * panel test runs the daemon the way every Python suite does. dir and db exist before
 * start(), for the CLI fixtures; serveArgs are further launcher options (--sink, --account
 * ...), and info is the launcher's JSON line once started. The launcher stops the daemon by
 * PID when its standard input closes or it gets SIGTERM. With '--smtp' among serveArgs the
 * daemon also takes SMTP (STARTTLS offered, a self-signed certificate): the launcher's line
 * then carries smtp_port, which smtpPort gives.
 */
class Gateway {
  constructor(serveArgs = []) {
    this.serveArgs = serveArgs;
    this.info = null;
    this.dir = fs.mkdtempSync(path.join(os.tmpdir(), 'postern-e2e-'));
    this.db = path.join(this.dir, 'postern.db');
    this.logPath = path.join(this.dir, 'serve.log');
    this.proc = null;
    this.port = null;
  }

  get base() {
    return `http://127.0.0.1:${this.port}`;
  }

  get smtpPort() {
    return this.info && this.info.smtp_port;
  }

  async start(timeoutMs = 30000) {
    // The fixtures are made with --db: the launcher must use SQLite whatever the caller's
    // environment says.
    const env = { ...process.env, POSTERN_BIN: BIN, POSTERN_TEST_BACKEND: 'sqlite' };
    this.proc = spawn('python3', [LAUNCHER, 'serve', '--dir', this.dir, ...this.serveArgs],
      { env, stdio: ['pipe', 'pipe', 'inherit'] });
    const info = await withTimeout(new Promise((resolve, reject) => {
      let out = '';
      this.proc.stdout.on('data', (chunk) => {
        out += chunk;
        const nl = out.indexOf('\n');
        if (nl < 0) return;
        try {
          resolve(JSON.parse(out.slice(0, nl)));
        } catch (err) {
          reject(new Error(`harness.py serve printed ${out.slice(0, nl)}: ${err.message}`));
        }
      });
      this.proc.on('exit', (code, signal) => {
        reject(new Error(`harness.py serve exited (${code ?? signal}):\n${this.log()}`));
      });
    }), timeoutMs, 'harness.py serve');
    this.info = info;
    this.port = info.port;
    if (this.serveArgs.includes('--smtp') && !info.smtp_port) {
      await this.stop();
      throw new Error(`harness.py serve --smtp printed no smtp_port: ${JSON.stringify(info)}`);
    }
    return this;
  }

  log() {
    try {
      return fs.readFileSync(this.logPath, 'utf8');
    } catch {
      return '';
    }
  }

  /** Closes the launcher's standard input (it stops the daemon); SIGKILL after timeoutMs. */
  async stop(timeoutMs = 20000) {
    const p = this.proc;
    this.proc = null;
    if (!p || p.exitCode !== null || p.signalCode !== null) return;
    const gone = new Promise((resolve) => p.once('exit', resolve));
    p.stdin.end();
    try {
      await withTimeout(gone, timeoutMs, 'harness.py serve shutdown');
    } catch {
      p.kill('SIGKILL');
      await withTimeout(gone, 5000, 'harness.py serve kill').catch(() => {});
    }
  }

  cleanup() {
    fs.rmSync(this.dir, { recursive: true, force: true });
  }
}

module.exports = { BIN, ROOT, PASSWORD, CHROMIUM_ARGS, Gateway, cli, until, withTimeout, sleep };
