// The management API client: same-origin fetch with the session cookie, the CSRF token on
// every change, and one place where a 401 ("your session ended") is noticed.

let csrfToken = null;
let unauthorizedHandler = null;

export function setCsrfToken(token) {
  csrfToken = token || null;
}

/** Called once with the error when any request (but the login itself) answers 401. */
export function onUnauthorized(fn) {
  unauthorizedHandler = fn;
}

export class ApiError extends Error {
  constructor(status, code, message, field) {
    super(message);
    this.status = status;
    this.code = code;
    this.field = field || null;
    this.sessionEnded = false;
  }
}

/**
 * api('POST', '/api/senders', {addresses: [...]}) → the parsed JSON body (null for 204).
 * Throws ApiError with the API's {code, message, field}. options.allow401: the caller
 * handles a 401 itself (logging in, checking for an existing session).
 */
export async function api(method, path, body, options = {}) {
  const init = { method, credentials: 'same-origin', headers: { Accept: 'application/json' }, cache: 'no-store' };
  if (body !== undefined) {
    init.headers['Content-Type'] = 'application/json';
    init.body = JSON.stringify(body);
  }
  if (method !== 'GET' && method !== 'HEAD' && csrfToken) init.headers['X-CSRF-Token'] = csrfToken;

  let res;
  try {
    res = await fetch(path, init);
  } catch {
    throw new ApiError(0, 'network_error', 'Postern could not be reached. Check your connection and try again.');
  }
  const text = await res.text();
  let data = null;
  if (text) {
    try {
      data = JSON.parse(text);
    } catch {
      data = null;
    }
  }
  if (res.ok) return data;

  const e = (data && data.error) || {};
  const err = new ApiError(res.status, e.code || `http_${res.status}`,
    e.message || `The server answered with status ${res.status}. Try again.`, e.field);
  if (res.status === 401 && !options.allow401) {
    err.sessionEnded = true;
    if (unauthorizedHandler) unauthorizedHandler(err);
  }
  throw err;
}
