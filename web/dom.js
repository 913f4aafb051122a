// Small DOM helpers. Everything the panel shows is built with DOM APIs and textContent:
// API data never goes through innerHTML.

let idCounter = 0;

/** A unique id for label/aria wiring. */
export function uid(prefix = 'p') {
  idCounter += 1;
  return `${prefix}-${idCounter}`;
}

/**
 * h('button', {class: 'btn', type: 'button', onclick: fn, 'aria-label': 'x'}, 'Text', child)
 * Attributes: `class`, `text` (textContent), `on*` functions (event listeners), booleans
 * (set when true, omitted when false), null/undefined are skipped. Children: nodes,
 * strings (as text), arrays, and null/false (skipped).
 */
export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  if (attrs) {
    for (const [key, value] of Object.entries(attrs)) {
      if (value === null || value === undefined || value === false) continue;
      if (key === 'text') {
        el.textContent = String(value);
      } else if (key.startsWith('on') && typeof value === 'function') {
        el.addEventListener(key.slice(2), value);
      } else if (key === 'value' && 'value' in el) {
        el.value = value;
      } else if (value === true) {
        el.setAttribute(key, '');
      } else {
        el.setAttribute(key, String(value));
      }
    }
  }
  append(el, children);
  return el;
}

/** Appends children (nodes, strings, nested arrays; null/false skipped). */
export function append(el, children) {
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

/** Replaces every child of el. */
export function replace(el, ...children) {
  el.replaceChildren();
  return append(el, children);
}

const dateFmt = new Intl.DateTimeFormat(undefined, {
  year: 'numeric', month: 'short', day: 'numeric', hour: '2-digit', minute: '2-digit',
});
const thisYearFmt = new Intl.DateTimeFormat(undefined, {
  month: 'short', day: 'numeric', hour: '2-digit', minute: '2-digit',
});
const secondsFmt = new Intl.DateTimeFormat(undefined, {
  month: 'short', day: 'numeric', hour: '2-digit', minute: '2-digit', second: '2-digit',
});

/** A <time> for an ISO timestamp (local time, the year only when it is not this one; the
 * exact UTC time in the title), or the fallback text. seconds: to the second (a timeline
 * whose steps come seconds apart), the year left out. */
export function time(iso, fallback = '—', { seconds = false } = {}) {
  if (!iso) return h('span', { class: 'muted', text: fallback });
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return h('span', { text: iso });
  let fmt = d.getFullYear() === new Date().getFullYear() ? thisYearFmt : dateFmt;
  if (seconds) fmt = secondsFmt;
  return h('time', { datetime: iso, title: iso, text: fmt.format(d) });
}

/**
 * A Refresh button that runs load(), disabled meanwhile. A failure goes to onError (the
 * error), when given; a 401 has already returned to the login screen.
 */
export function refreshButton(load, onError) {
  const btn = h('button', { type: 'button', class: 'btn btn-secondary' }, 'Refresh');
  btn.addEventListener('click', async () => {
    btn.disabled = true;
    try {
      await load();
    } catch (err) {
      if (onError && !err.sessionEnded) onError(err);
    } finally {
      btn.disabled = false;
    }
  });
  return btn;
}

/** A status badge: tone is one of ok, warn, bad, info, neutral. */
export function badge(text, tone = 'neutral') {
  return h('span', { class: `badge badge-${tone}`, text });
}

/**
 * A button with role=switch. onToggle(next) is called on click (Enter and Space included,
 * since it is a real button); the caller decides whether the state really changes.
 */
export function switchButton({ label, checked, disabled = false, describedBy, onToggle }) {
  const btn = h('button', {
    type: 'button',
    role: 'switch',
    class: 'switch',
    'aria-checked': checked ? 'true' : 'false',
    'aria-label': label,
    'aria-describedby': describedBy,
    disabled,
  }, h('span', { class: 'switch-track', 'aria-hidden': 'true' }, h('span', { class: 'switch-thumb' })));
  btn.addEventListener('click', () => {
    if (!btn.disabled && onToggle) onToggle(btn.getAttribute('aria-checked') !== 'true', btn);
  });
  return btn;
}

export function setSwitch(btn, checked) {
  btn.setAttribute('aria-checked', checked ? 'true' : 'false');
}

/**
 * An inline message slot, always in the DOM (so screen readers hear changes) and invisible
 * while empty. show(text, tone): tone error (role=alert), success, warn or info (status).
 */
export function messageSlot(extraClass = '') {
  const base = `msg ${extraClass}`.trim();
  const el = h('div', { class: base, id: uid('msg'), role: 'status', 'aria-live': 'polite' });
  return {
    el,
    id: el.id,
    show(text, tone = 'info') {
      el.className = `${base} msg-${tone}`;
      el.setAttribute('role', tone === 'error' ? 'alert' : 'status');
      replace(el, ...(Array.isArray(text) ? text : [text]));
    },
    clear() {
      el.className = base;
      el.replaceChildren();
    },
  };
}

/** Marks an input invalid and points it at the message describing why. */
export function markInvalid(input, messageId) {
  input.setAttribute('aria-invalid', 'true');
  const ids = new Set((input.getAttribute('aria-describedby') || '').split(/\s+/).filter(Boolean));
  ids.add(messageId);
  input.setAttribute('aria-describedby', [...ids].join(' '));
}

export function clearInvalid(input, messageId) {
  input.removeAttribute('aria-invalid');
  const ids = (input.getAttribute('aria-describedby') || '').split(/\s+/).filter((x) => x && x !== messageId);
  if (ids.length) input.setAttribute('aria-describedby', ids.join(' '));
  else input.removeAttribute('aria-describedby');
}

/** A labelled form field: returns {wrap, input, error}. */
export function field({ label, type = 'text', name, autocomplete, hint, required = false, placeholder, inputmode, control }) {
  const id = uid('f');
  const input = control || h('input', { id, type, name, autocomplete, required, placeholder, inputmode, spellcheck: type === 'email' ? 'false' : null });
  if (control) control.id = id;
  const hintEl = hint ? h('p', { class: 'hint', id: uid('hint'), text: hint }) : null;
  if (hintEl) input.setAttribute('aria-describedby', hintEl.id);
  const error = h('p', { class: 'field-error', id: uid('err'), hidden: true });
  const wrap = h('div', { class: 'field' }, h('label', { for: id, text: label }), input, hintEl, error);
  return {
    wrap,
    input,
    setError(text) {
      if (!text) {
        error.hidden = true;
        error.textContent = '';
        clearInvalid(input, error.id);
        return;
      }
      error.textContent = text;
      error.hidden = false;
      markInvalid(input, error.id);
    },
  };
}

/**
 * A table that scrolls sideways inside its own box on narrow screens (the page never
 * does). columns: [{label, className}], rows: arrays of cells (node or text), or
 * {cells, className, onClick}: onClick runs on a click in the row that is not on one of its
 * controls or text being selected (a mouse shortcut: the row must hold a button that does
 * the same).
 */
export function table({ caption, columns, rows, className = '', empty = 'Nothing here yet.', stack = true }) {
  const head = h('thead', null, h('tr', null, columns.map((c) => h('th', { scope: 'col', class: c.className }, c.label))));
  const body = h('tbody');
  if (!rows.length) {
    body.append(h('tr', { class: 'empty-row' }, h('td', { colspan: String(columns.length), class: 'empty', text: empty })));
  }
  for (const row of rows) {
    const cells = row.cells || row;
    const tr = h('tr', { class: row.className });
    if (row.onClick) {
      tr.addEventListener('click', (ev) => {
        if (ev.target.closest('button, a, input, select, textarea') || String(window.getSelection())) return;
        row.onClick(ev);
      });
    }
    cells.forEach((cell, i) => {
      const col = columns[i] || {};
      tr.append(h('td', { class: col.className, 'data-label': col.label && typeof col.label === 'string' ? col.label : null }, cell));
    });
    body.append(tr);
  }
  const t = h('table', { class: `data ${stack ? 'stack' : ''} ${className}`.trim() },
    caption ? h('caption', { class: 'visually-hidden', text: caption }) : null, head, body);
  return h('div', { class: stack ? 'table-wrap table-wrap-stack' : 'table-wrap' }, t);
}

/** An email address as text that may wrap before its @ (a <wbr>), never inside a word. */
export function wrapEmail(text) {
  const at = text.lastIndexOf('@');
  if (at <= 0) return [text];
  return [text.slice(0, at), h('wbr'), text.slice(at)];
}

/** A visually hidden span (for screen reader-only text). */
export function srOnly(text) {
  return h('span', { class: 'visually-hidden', text });
}

/** Copies text: the async Clipboard API where allowed, a selected textarea otherwise. */
export async function copyText(text) {
  try {
    if (navigator.clipboard && window.isSecureContext) {
      await navigator.clipboard.writeText(text);
      return true;
    }
  } catch {
    // Fall through to the older path (permission refused, insecure context, ...).
  }
  const ta = h('textarea', { class: 'clipboard-helper', readonly: true, 'aria-hidden': 'true', tabindex: '-1' });
  ta.value = text;
  document.body.append(ta);
  ta.select();
  let ok = false;
  try {
    ok = document.execCommand('copy');
  } catch {
    ok = false;
  }
  ta.remove();
  return ok;
}

/**
 * A `Copy` button: visible text `text`, accessible name from `label`. On failure it
 * selects `selectTarget`'s text so the user can press Ctrl+C.
 */
export function copyButton(getText, label, selectTarget, text = 'Copy') {
  const btn = h('button', { type: 'button', class: 'btn btn-small btn-ghost copy', 'aria-label': label }, text);
  const live = h('span', { class: 'visually-hidden', role: 'status' });
  let timer = null;
  btn.addEventListener('click', async () => {
    const ok = await copyText(getText());
    clearTimeout(timer);
    if (ok) {
      btn.textContent = 'Copied';
      btn.classList.add('copied');
      live.textContent = 'Copied to the clipboard.';
    } else {
      if (selectTarget) {
        const range = document.createRange();
        range.selectNodeContents(selectTarget);
        const sel = window.getSelection();
        sel.removeAllRanges();
        sel.addRange(range);
      }
      btn.textContent = 'Press Ctrl+C';
      live.textContent = 'Copying is blocked here. The text is selected: press Control C (or Command C) to copy.';
    }
    timer = setTimeout(() => {
      btn.textContent = text;
      btn.classList.remove('copied');
      live.textContent = '';
    }, 2500);
  });
  return h('span', { class: 'copy-wrap' }, btn, live);
}
