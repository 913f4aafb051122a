// Settings › Webhooks (Admin and Technical Team): the endpoints Postern posts the account's
// events to, signed. A new endpoint's signing secret is shown once, right after it is made.
import { api } from './http.js';
import { h, replace, uid, time, badge, messageSlot, field, table, copyButton, refreshButton } from './dom.js';
import { confirmDialog, modalForm, openModal } from './dialogs.js';

/** The subscribable event types (src/event.c's event_types[]), grouped as the form shows them. */
export const MESSAGE_EVENTS = ['message.processed', 'message.deferred', 'message.delivered', 'message.bounced', 'message.dropped', 'message.complained'];
export const ACCOUNT_EVENTS = ['sender.added', 'sender.verified', 'sender.removed', 'sender_auth.changed', 'domain.verified', 'domain.failed', 'sender_policy.refused', 'sender_policy.monitored'];
const ALL_EVENTS = [...MESSAGE_EVENTS, ...ACCOUNT_EVENTS];

const FORMATS = {
  standard: { label: 'Standard Webhooks', hint: 'One event per request, signed with HMAC-SHA256 (webhook-signature header).' },
  sendgrid: { label: 'SendGrid Event Webhook', hint: 'Batches of message events in SendGrid’s shape, signed with ECDSA. Account events are not sent in this format.' },
};

function formatLabel(format) {
  return (FORMATS[format] || { label: format }).label;
}

/** Every event type an endpoint of this format can receive. */
function eventsFor(format) {
  return format === 'sendgrid' ? MESSAGE_EVENTS : ALL_EVENTS;
}

function eventsCell(w) {
  const events = w.events || [];
  if (eventsFor(w.format).every((t) => events.includes(t))) return h('span', { text: 'All events' });
  return h('span', { class: 'event-list' }, events.map((t) => h('code', { class: 'mono', text: t })));
}

/** Enabled, Failing since …, or Disabled (since … when failures disabled it). */
function statusCell(w) {
  if (!w.enabled) {
    return h('span', { class: 'details status-cell' }, badge('Disabled', 'bad'),
      w.disabled_at ? h('span', { class: 'muted' }, 'since ', time(w.disabled_at)) : null);
  }
  if (w.failing_since) {
    return h('span', { class: 'details status-cell' }, badge('Failing', 'warn'),
      h('span', { class: 'muted' }, 'since ', time(w.failing_since)));
  }
  return badge('Enabled', 'ok');
}

function lastDeliveryCell(w) {
  const last = w.last_delivery;
  if (!last) return h('span', { class: 'muted', text: 'None yet' });
  const ok = /^2\d\d$/.test(last.status);
  return h('span', { class: 'details' },
    h('code', { class: ok ? 'mono' : 'mono text-bad', text: last.status }),
    h('span', { class: 'muted' }, time(last.at)));
}

function checkbox(value, label, checked = false) {
  const id = uid('cb');
  const input = h('input', { type: 'checkbox', id, value, checked });
  return { input, wrap: h('div', { class: 'check' }, input, h('label', { for: id, text: label })) };
}

/**
 * The "Add endpoint" form: URL, format and events ("All events" by default). Resolves to
 * the API's answer (with the secret or public key) once the endpoint is made, null when
 * cancelled. The API's refusals (a URL it will not post to, ...) are shown in the dialog.
 */
function addEndpointDialog() {
  return new Promise((resolve) => {
    const url = field({ label: 'URL', type: 'url', name: 'webhook-url', autocomplete: 'off', placeholder: 'https://app.example.com/postern/events', hint: 'http or https. Postern posts each event here and follows no redirect.' });
    const formatHint = h('p', { class: 'hint', id: uid('hint') });
    const format = field({ label: 'Format', control: h('select', { name: 'format' },
      Object.entries(FORMATS).map(([v, f]) => h('option', { value: v, text: f.label }))) });
    format.input.setAttribute('aria-describedby', formatHint.id);
    format.wrap.append(formatHint);

    const all = checkbox('*', 'All events', true);
    const boxes = ALL_EVENTS.map((t) => checkbox(t, t));
    const group = (legend, types) => h('fieldset', { class: 'check-group' }, h('legend', { text: legend }),
      boxes.filter((b) => types.includes(b.input.value)).map((b) => b.wrap));
    const eventsError = h('p', { class: 'field-error', id: uid('err'), hidden: true });
    const events = h('fieldset', { class: 'events-field', 'aria-describedby': eventsError.id },
      h('legend', { text: 'Events' }), all.wrap,
      h('div', { class: 'check-groups' }, group('Message events', MESSAGE_EVENTS), group('Account events', ACCOUNT_EVENTS)),
      eventsError);

    function sync() {
      const allowed = eventsFor(format.input.value);
      formatHint.textContent = FORMATS[format.input.value].hint;
      for (const b of boxes) {
        if (!allowed.includes(b.input.value)) b.input.checked = false;
        b.input.disabled = all.input.checked || !allowed.includes(b.input.value);
      }
    }
    format.input.addEventListener('change', sync);
    all.input.addEventListener('change', sync);
    sync();

    function setEventsError(text) {
      eventsError.textContent = text || '';
      eventsError.hidden = !text;
    }

    const msg = messageSlot('dialog-msg');
    const cancel = h('button', { type: 'button', class: 'btn btn-secondary' }, 'Cancel');
    const confirm = h('button', { type: 'submit', class: 'btn btn-primary' }, 'Add endpoint');
    const { dialog, form } = modalForm({
      title: 'Add a webhook endpoint',
      intro: h('p', { text: 'Postern signs every request, retries for 24 hours when the endpoint does not answer 2xx, and disables an endpoint that has failed for 24 hours.' }),
      content: [url.wrap, format.wrap, events, msg.el],
      actions: [cancel, confirm],
      className: 'modal-form',
    });
    let busy = false;
    let made = null;

    cancel.addEventListener('click', () => dialog.close());
    dialog.addEventListener('cancel', (ev) => {
      if (busy) ev.preventDefault();
    });
    dialog.addEventListener('close', () => resolve(made));
    form.addEventListener('submit', async (ev) => {
      ev.preventDefault();
      if (busy) return;
      msg.clear();
      url.setError('');
      setEventsError('');
      const chosen = boxes.filter((b) => b.input.checked).map((b) => b.input.value);
      if (!url.input.value.trim()) {
        url.setError('Enter the URL that receives the events.');
        url.input.focus();
        return;
      }
      if (!all.input.checked && !chosen.length) {
        setEventsError('Choose at least one event, or All events.');
        all.input.focus();
        return;
      }
      const request = { url: url.input.value.trim(), format: format.input.value };
      if (!all.input.checked) request.events = chosen;
      busy = true;
      confirm.disabled = true;
      cancel.disabled = true;
      try {
        made = await api('POST', '/api/webhooks', request);
        dialog.close();
      } catch (err) {
        if (err.sessionEnded) {
          dialog.close();
          return;
        }
        if (err.field === 'url' || err.code === 'webhook_url_not_allowed') {
          url.setError(err.message);
          url.input.focus();
        } else if (err.field === 'events') {
          setEventsError(err.message);
          all.input.focus();
        } else {
          msg.show(err.message, 'error');
        }
      } finally {
        busy = false;
        confirm.disabled = false;
        cancel.disabled = false;
      }
    });
    openModal(dialog, url.input);
  });
}

/**
 * Shows a new endpoint's signing material with a Copy button: the whsec_ secret (shown this
 * once only), or the public key that verifies SendGrid-format requests.
 */
function signingDialog(w) {
  return new Promise((resolve) => {
    const standard = w.format !== 'sendgrid';
    const value = standard ? w.secret : w.public_key;
    const what = standard ? 'signing secret' : 'public key';
    const code = h('code', { class: 'secret', text: value });
    const done = h('button', { type: 'submit', class: 'btn btn-primary' }, 'Done');
    const intro = standard
      ? [h('p', { class: 'notice-title', text: 'Copy this secret now: it will not be shown again.' }),
        h('p', { text: 'Your receiver checks the webhook-signature header of each request with it. If it is lost, delete this endpoint and add it again.' })]
      : [h('p', { class: 'notice-title', text: 'Copy this public key into your receiver: it verifies the X-Twilio-Email-Event-Webhook-Signature header.' }),
        h('p', { text: 'The private key that signs stays in Postern and will not be shown. The public key can be copied again from the list.' })];
    const { dialog, form } = modalForm({
      title: 'Endpoint added',
      intro,
      content: h('div', { class: 'secret-row' }, code, copyButton(() => value, `Copy ${what}`, code)),
      actions: [done],
      className: 'modal-wide modal-secret',
    });
    form.addEventListener('submit', (ev) => {
      ev.preventDefault();
      dialog.close();
    });
    dialog.addEventListener('close', () => resolve());
    openModal(dialog, done);
  });
}

export async function renderWebhooks(body) {
  let hooks = [];
  const listMsg = messageSlot();
  const tableSlot = h('div');
  const add = h('button', { type: 'button', class: 'btn btn-primary' }, 'Add endpoint');
  const refresh = refreshButton(() => load(), (err) => listMsg.show(err.message, 'error'));

  async function load() {
    hooks = (await api('GET', '/api/webhooks')).webhooks;
    renderTable();
  }

  /** Runs an action of a row's button, then shows its outcome and the list anew. */
  async function act(btn, fn) {
    listMsg.clear();
    btn.disabled = true;
    try {
      const text = await fn();
      await load();
      if (text) listMsg.show(text, 'success');
    } catch (err) {
      if (!err.sessionEnded) listMsg.show(err.message, 'error');
      btn.disabled = false;
    }
  }

  function rowActions(w) {
    const test = h('button', { type: 'button', class: 'btn btn-secondary btn-small', 'aria-label': `Send a test event to ${w.url}` }, 'Send test event');
    test.addEventListener('click', () => act(test, async () => {
      await api('POST', `/api/webhooks/${w.id}/test`);
      return `A test event is on its way to ${w.url}. Refresh to see how it went.`;
    }));
    const toggle = h('button', { type: 'button', class: 'btn btn-secondary btn-small', 'aria-label': `${w.enabled ? 'Disable' : 'Enable'} ${w.url}` }, w.enabled ? 'Disable' : 'Enable');
    toggle.addEventListener('click', () => act(toggle, async () => {
      await api('PATCH', `/api/webhooks/${w.id}`, { enabled: !w.enabled });
      return w.enabled ? `${w.url} is disabled: events are no longer sent to it.` : `${w.url} is enabled again.`;
    }));
    const remove = h('button', { type: 'button', class: 'btn btn-ghost-danger btn-small', 'aria-label': `Delete ${w.url}` }, 'Delete');
    remove.addEventListener('click', async () => {
      const yes = await confirmDialog({
        title: 'Delete this endpoint?',
        message: h('p', { text: `Postern stops posting events to ${w.url}, including those still waiting for a retry. This cannot be undone.` }),
        confirmLabel: 'Delete',
        danger: true,
      });
      if (yes) await act(remove, async () => {
        await api('DELETE', `/api/webhooks/${w.id}`);
        return `${w.url} was deleted.`;
      });
    });
    const copyKey = w.public_key ? copyButton(() => w.public_key, `Copy public key of ${w.url}`, null, 'Copy public key') : null;
    return h('div', { class: 'row-actions' }, test, toggle, remove, copyKey);
  }

  function renderTable() {
    replace(tableSlot, table({
      caption: 'Webhook endpoints',
      className: 'webhooks',
      columns: [{ label: 'URL' }, { label: 'Format' }, { label: 'Events' }, { label: 'Status' }, { label: 'Last delivery' }, { label: 'Actions' }],
      rows: hooks.map((w) => [
        h('span', { class: 'webhook-url', text: w.url }),
        formatLabel(w.format),
        eventsCell(w),
        statusCell(w),
        lastDeliveryCell(w),
        rowActions(w),
      ]),
      empty: 'No endpoints yet. Add one to hear about deliveries, bounces and sender changes.',
    }));
  }

  add.addEventListener('click', async () => {
    listMsg.clear();
    const made = await addEndpointDialog();
    if (!made) return;
    await signingDialog(made);
    try {
      await load();
      listMsg.show(`${made.url} was added.`, 'success');
    } catch (err) {
      if (!err.sessionEnded) listMsg.show(err.message, 'error');
    }
  });

  await load();
  replace(body,
    h('div', { class: 'page-tools' },
      h('p', { class: 'page-intro', text: 'Postern posts what happens after a send (delivered, deferred, bounced, dropped) and changes to senders and domains to these URLs, signed so your application can trust them.' }),
      add),
    h('section', { class: 'card', 'aria-labelledby': 'webhooks-title' },
      h('div', { class: 'card-head card-head-row' },
        h('h2', { id: 'webhooks-title', text: 'Endpoints' }),
        refresh),
      listMsg.el,
      tableSlot));
}
