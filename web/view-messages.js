// Monitoring › Messages: totals, recent messages with their status and, for each, the
// timeline of its events; refused requests.
import { api } from './http.js';
import { h, replace, uid, time, table, badge, wrapEmail, messageSlot, refreshButton } from './dom.js';
import { modalForm, openModal } from './dialogs.js';

export const REASONS = {
  sender_auth_no_senders: 'No verified sender (all mail dropped)',
  domain_not_approved: 'Domain not approved',
  domain_not_verified: 'Domain not verified',
  domain_inactive: 'Domain inactive',
  sender_not_authorized: 'Sender not authorized',
  sender_pending_verification: 'Sender pending verification',
  sender_not_allowed_for_key: 'Sender not allowed for the API key',
  relay_rejected: 'Relay rejected',
  gave_up: 'Gave up retrying',
  payload_unreadable: 'Stored message unreadable',
  compose_failed: 'Message could not be built',
  cancelled: 'Cancelled',
  recipient_suppressed: 'Suppressed recipient',
};
const STATUS = {
  queued: ['Queued', 'info'],
  scheduled: ['Scheduled', 'info'],
  deferred: ['Deferred', 'warn'],
  sent: ['Sent', 'ok'],
  failed: ['Failed', 'bad'],
  dropped: ['Dropped', 'bad'],
  cancelled: ['Cancelled', 'neutral'],
};
const CANCELLABLE = new Set(['queued', 'scheduled', 'deferred']);
// A message event's type (message.<name>) as the timeline shows it.
const EVENTS = {
  processed: ['Processed', 'info'],
  deferred: ['Deferred', 'warn'],
  delivered: ['Delivered', 'ok'],
  bounced: ['Bounced', 'bad'],
  dropped: ['Dropped', 'bad'],
  complained: ['Complained', 'bad'],
};
// message.bounced's type: a hard bounce suppresses the address, a blocked one does not.
const BOUNCE_TYPES = {
  bounce: 'Hard bounce: the address is now suppressed',
  blocked: 'Blocked: not suppressed',
};
// Where an event learnt of a bounce, deferral or complaint that came back after delivery.
const SOURCES = {
  dsn: 'a delivery status report',
  arf: 'a feedback report',
  text: 'a returned message',
};
const TIMELINE_LIMIT = 1000;

function reasonText(code) {
  return REASONS[code] || code;
}

/** What the relay or a returned report said, or why the message was dropped, as one
 * event's details. */
function eventDetails(d) {
  const lines = [];
  const line = (...parts) => lines.push(h('span', { class: 'detail-line' }, parts));
  if (BOUNCE_TYPES[d.type]) line(BOUNCE_TYPES[d.type], ' ', h('code', { class: 'mono muted', text: d.type }));
  if (d.feedback_type) line('Complaint, feedback type ', h('code', { class: 'mono', text: d.feedback_type }));
  if (d.reason) lines.push(h('span', { class: 'detail-line' }, reasonText(d.reason), ' ', h('code', { class: 'mono muted', text: d.reason })));
  if (d.status) lines.push(h('span', { class: 'detail-line' }, 'Status ', h('code', { class: 'mono', text: d.status })));
  if (d.diagnostic) lines.push(h('span', { class: 'detail-line mono', text: d.diagnostic }));
  if (d.reply) lines.push(h('span', { class: 'detail-line mono', text: d.reply }));
  if (SOURCES[d.source]) line(h('span', { class: 'muted', text: `From ${SOURCES[d.source]}${d.reporting_mta ? ` by ${d.reporting_mta}` : ''}` }));
  return lines.length ? h('span', { class: 'details' }, lines) : h('span', { class: 'muted', text: '—' });
}

/** The events of one message (GET /api/events?message_id=), oldest first, in a dialog. */
async function timelineDialog(m) {
  const events = (await api('GET', `/api/events?message_id=${encodeURIComponent(m.id)}&limit=${TIMELINE_LIMIT}`)).events.slice().reverse();
  const rows = events.map((e) => {
    const name = e.type.replace(/^message\./, '');
    const [label, tone] = EVENTS[name] || [e.type, 'neutral'];
    const d = e.data || {};
    return [
      time(e.created_at, '—', { seconds: true }),
      badge(label, tone),
      h('span', { class: 'address' }, e.recipient ? wrapEmail(e.recipient) : '—'),
      eventDetails(d),
      d.attempt === undefined || d.attempt === null ? h('span', { class: 'muted', text: '—' }) : String(d.attempt),
    ];
  });
  const close = h('button', { type: 'submit', class: 'btn btn-primary' }, 'Close');
  const { dialog, form } = modalForm({
    title: `Timeline of message ${m.id}`,
    intro: h('p', null, 'From ', h('span', { class: 'address' }, wrapEmail(m.from)), ', created ', time(m.created_at), '. One event per recipient and attempt, oldest first.'),
    content: table({
      caption: 'Events of this message',
      columns: [{ label: 'Time' }, { label: 'Event' }, { label: 'Recipient' }, { label: 'Details' }, { label: 'Attempt', className: 'num' }],
      rows,
      empty: m.kind === 'system' ? 'Postern’s own mail has no events.' : 'No events for this message yet.',
    }),
    actions: [close],
    className: 'modal-wide',
  });
  form.addEventListener('submit', (ev) => {
    ev.preventDefault();
    dialog.close();
  });
  openModal(dialog, close);
}

/** Opens the timeline of the message the page was opened on (#/messages?id=…). */
async function openMessage(id) {
  const m = await api('GET', `/api/messages/${encodeURIComponent(id)}`);
  await timelineDialog(m);
}

export async function renderMessages(body, session, params) {
  const canCancel = session && session.can('message.cancel');
  const listMsg = messageSlot();
  const statusSelect = h('select', { id: uid('status') },
    h('option', { value: '', text: 'All statuses' }),
    Object.entries(STATUS).map(([v, [l]]) => h('option', { value: v, text: l })));
  // A failed refresh leaves the last view.
  const refresh = refreshButton(() => load());
  const statsSlot = h('div');
  const messagesSlot = h('div');
  const dropsSlot = h('div');

  async function load() {
    const status = statusSelect.value;
    const [stats, messages, drops] = await Promise.all([
      api('GET', '/api/stats'),
      api('GET', `/api/messages?limit=100${status ? `&status=${encodeURIComponent(status)}` : ''}`),
      api('GET', '/api/drops?limit=100'),
    ]);
    const droppedTotal = Object.values(stats.dropped).reduce((a, b) => a + b, 0);
    // Monitor mode's would-be refusals: accepted, shown once there are any.
    const monitoredTotal = Object.values(stats.monitored || {}).reduce((a, b) => a + b, 0);
    replace(statsSlot, h('div', { class: 'totals' },
      h('div', { class: 'stat-cards' },
        h('div', { class: 'stat' }, h('p', { class: 'stat-label', text: 'Accepted' }), h('p', { class: 'stat-value', text: String(stats.accepted) })),
        h('div', { class: 'stat stat-bad' }, h('p', { class: 'stat-label', text: 'Refused by the sender policy' }), h('p', { class: 'stat-value', text: String(droppedTotal) })),
        monitoredTotal ? h('div', { class: 'stat' }, h('p', { class: 'stat-label', text: 'Accepted in Monitor mode, would be refused' }), h('p', { class: 'stat-value', text: String(monitoredTotal) })) : null),
      table({
        caption: 'Refused requests by reason',
        columns: [{ label: 'Reason' }, { label: 'Code', className: 'hide-narrow' }, { label: 'Count', className: 'num' }],
        rows: Object.entries(stats.dropped).map(([code, n]) => ({
          className: n ? '' : 'row-zero',
          cells: [reasonText(code), h('code', { class: 'mono', text: code }), String(n)],
        })),
        stack: false,
      })));

    replace(messagesSlot, table({
      caption: 'Recent messages',
      columns: [{ label: 'Created' }, { label: 'From' }, { label: 'Status' }, { label: 'Recipients', className: 'num' }, { label: 'Attempts', className: 'num' }, { label: 'Details' }, { label: 'Actions', className: 'col-actions' }],
      rows: messages.messages.map(messageRow),
      empty: statusSelect.value ? 'No message with this status.' : 'No messages yet.',
    }));

    replace(dropsSlot, table({
      caption: 'Refused send requests',
      columns: [{ label: 'Minute' }, { label: 'From' }, { label: 'Reason' }, { label: 'Count', className: 'num' }, { label: 'API key' }],
      rows: drops.drops.map((d) => [
        time(d.at),
        h('span', { class: 'address' }, d.from ? wrapEmail(d.from) : '—'),
        h('span', null, reasonText(d.reason), ' ', h('code', { class: 'mono muted', text: d.reason })),
        String(d.count),
        d.key_id === null || d.key_id === undefined ? h('span', { class: 'muted', text: '—' }) : `#${d.key_id}`,
      ]),
      empty: 'No request was refused.',
    }));
  }

  /** A row of Recent messages; a click on it opens the message's timeline. */
  function messageRow(m) {
    const [label, tone] = STATUS[m.status] || [m.status, 'neutral'];
    const details = [];
    if (m.send_at) details.push(h('span', { class: 'detail-line' }, 'Send at ', time(m.send_at)));
    if (m.status === 'scheduled' && m.next_attempt_at && m.next_attempt_at !== m.send_at) details.push(h('span', { class: 'detail-line' }, 'Next part at ', time(m.next_attempt_at)));
    if (m.reason) details.push(h('span', { class: 'detail-line', text: reasonText(m.reason) }));
    if (m.last_reply) details.push(h('span', { class: 'detail-line mono', text: m.last_reply }));
    if (m.rejected && m.rejected.length) details.push(h('span', { class: 'detail-line', text: `${m.rejected.length} recipient(s) refused by the relay` }));
    if (m.kind === 'system') details.push(h('span', { class: 'detail-line muted', text: 'Postern’s own mail (verification email)' }));
    const timeline = timelineButton(m);
    return {
      className: 'row-clickable',
      onClick: () => {
        timeline.focus();
        timeline.click();
      },
      cells: [
        time(m.created_at),
        h('span', { class: 'address' }, wrapEmail(m.from)),
        badge(label, tone),
        String(m.recipients),
        String(m.attempts),
        details.length ? h('span', { class: 'details' }, details) : h('span', { class: 'muted', text: '—' }),
        h('div', { class: 'row-actions' }, timeline, canCancel && CANCELLABLE.has(m.status) ? cancelButton(m) : null),
      ],
    };
  }

  function timelineButton(m) {
    const btn = h('button', { type: 'button', class: 'btn btn-secondary btn-small', 'aria-label': `Timeline of message ${m.id}` }, 'Timeline');
    // Not disabled while the events load: the dialog gives focus back to this button.
    let busy = false;
    btn.addEventListener('click', async () => {
      if (busy) return;
      listMsg.clear();
      busy = true;
      try {
        await timelineDialog(m);
      } catch (err) {
        if (!err.sessionEnded) listMsg.show(err.message, 'error');
      } finally {
        busy = false;
      }
    });
    return btn;
  }

  function cancelButton(m) {
    const btn = h('button', { type: 'button', class: 'btn btn-ghost-danger btn-small', 'aria-label': `Cancel message ${m.id}` }, 'Cancel');
    btn.addEventListener('click', async () => {
      listMsg.clear();
      btn.disabled = true;
      try {
        await api('POST', `/api/messages/${encodeURIComponent(m.id)}/cancel`);
        listMsg.show('The message was cancelled; it will not be sent.', 'success');
      } catch (err) {
        if (!err.sessionEnded) listMsg.show(err.message, 'error');
      }
      await load().catch(() => {});
    });
    return btn;
  }

  statusSelect.addEventListener('change', () => load().catch(() => {}));

  await load();
  replace(body,
    h('div', { class: 'page-tools' },
      h('p', { class: 'page-intro', text: 'What was accepted for delivery and what the sender policy refused.' }),
      refresh),
    h('section', { class: 'card', 'aria-labelledby': 'totals-title' },
      h('h2', { id: 'totals-title', text: 'Totals' }),
      statsSlot),
    h('section', { class: 'card', 'aria-labelledby': 'recent-title' },
      h('div', { class: 'card-head card-head-row' },
        h('h2', { id: 'recent-title', text: 'Recent messages' }),
        h('div', { class: 'field field-inline' }, h('label', { for: statusSelect.id, text: 'Status' }), statusSelect)),
      listMsg.el,
      messagesSlot),
    h('section', { class: 'card', 'aria-labelledby': 'drops-title' },
      h('h2', { id: 'drops-title', text: 'Refused send requests' }),
      h('p', { class: 'hint', text: 'Counted per API key, From address, reason and minute.' }),
      dropsSlot));

  const id = params && params.get('id');
  if (id) {
    await openMessage(id).catch((err) => {
      if (!err.sessionEnded) listMsg.show(err.status === 404 ? `Message ${id} was not found.` : err.message, 'error');
    });
  }
}
