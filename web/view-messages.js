// Monitoring › Messages: totals, recent messages with their status, and refused requests.
import { api } from './http.js';
import { h, replace, uid, time, table, badge, wrapEmail, messageSlot } from './dom.js';

export const REASONS = {
  sender_auth_no_senders: 'No verified sender (all mail dropped)',
  domain_not_approved: 'Domain not approved',
  domain_not_verified: 'Domain not verified',
  domain_inactive: 'Domain inactive',
  sender_not_authorized: 'Sender not authorized',
  sender_pending_verification: 'Sender pending verification',
  relay_rejected: 'Relay rejected',
  gave_up: 'Gave up retrying',
  payload_unreadable: 'Stored message unreadable',
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

function reasonText(code) {
  return REASONS[code] || code;
}

export async function renderMessages(body, session) {
  const canCancel = session && session.can('message.cancel');
  const listMsg = messageSlot();
  const statusSelect = h('select', { id: uid('status') },
    h('option', { value: '', text: 'All statuses' }),
    Object.entries(STATUS).map(([v, [l]]) => h('option', { value: v, text: l })));
  const refresh = h('button', { type: 'button', class: 'btn btn-secondary' }, 'Refresh');
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
    replace(statsSlot, h('div', { class: 'totals' },
      h('div', { class: 'stat-cards' },
        h('div', { class: 'stat' }, h('p', { class: 'stat-label', text: 'Accepted' }), h('p', { class: 'stat-value', text: String(stats.accepted) })),
        h('div', { class: 'stat stat-bad' }, h('p', { class: 'stat-label', text: 'Refused by the sender policy' }), h('p', { class: 'stat-value', text: String(droppedTotal) }))),
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
      columns: [{ label: 'Created' }, { label: 'From' }, { label: 'Status' }, { label: 'Recipients', className: 'num' }, { label: 'Attempts', className: 'num' }, { label: 'Details' }, ...(canCancel ? [{ label: 'Actions' }] : [])],
      rows: messages.messages.map((m) => {
        const [label, tone] = STATUS[m.status] || [m.status, 'neutral'];
        const details = [];
        if (m.send_at) details.push(h('span', { class: 'detail-line' }, 'Send at ', time(m.send_at)));
        if (m.status === 'scheduled' && m.next_attempt_at && m.next_attempt_at !== m.send_at) details.push(h('span', { class: 'detail-line' }, 'Next part at ', time(m.next_attempt_at)));
        if (m.reason) details.push(h('span', { class: 'detail-line', text: reasonText(m.reason) }));
        if (m.last_reply) details.push(h('span', { class: 'detail-line mono', text: m.last_reply }));
        if (m.rejected && m.rejected.length) details.push(h('span', { class: 'detail-line', text: `${m.rejected.length} recipient(s) refused by the relay` }));
        if (m.kind === 'system') details.push(h('span', { class: 'detail-line muted', text: 'Postern’s own mail (verification email)' }));
        return [
          time(m.created_at),
          h('span', { class: 'address' }, wrapEmail(m.from)),
          badge(label, tone),
          String(m.recipients),
          String(m.attempts),
          details.length ? h('span', { class: 'details' }, details) : h('span', { class: 'muted', text: '—' }),
          ...(canCancel ? [CANCELLABLE.has(m.status) ? cancelButton(m) : ''] : []),
        ];
      }),
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
  refresh.addEventListener('click', async () => {
    refresh.disabled = true;
    try {
      await load();
    } catch {
      // A 401 returns to the login screen; other errors leave the last view.
    } finally {
      refresh.disabled = false;
    }
  });

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
}
