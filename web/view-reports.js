// Monitoring › Returned reports: what came back to the return path ([bounces] domain) for
// the account's messages. Unparsed ones are shown first, with their text, for a person to
// read what Postern could not; the text is only ever put in the page as text.
import { api } from './http.js';
import { h, replace, uid, time, badge, messageSlot, table, wrapEmail, refreshButton } from './dom.js';
import { messageLink } from './view-suppressions.js';

// The statuses the filter offers; a report waiting for the worker is new or parsing. (One
// whose message is gone, orphan, belongs to no account: no one is shown it.)
const STATUSES = {
  unparsed: ['Unparsed', 'warn'],
  done: ['Read', 'ok'],
};
const WAITING = { new: ['New', 'info'], parsing: ['Being read', 'info'] };
const KINDS = { dsn: 'Delivery status (DSN)', arf: 'Complaint (ARF)', text: 'Plain text' };
const PAGE = 50;

/** 2841 → "2.8 KB". */
export function byteSize(n) {
  if (typeof n !== 'number') return '—';
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} KB`;
  return `${(n / (1024 * 1024)).toFixed(1)} MB`;
}

/** A <details> closed by default, its content in a <pre> as text. */
function collapsed(summary, text) {
  return h('details', { class: 'report-text' },
    h('summary', { text: summary }),
    h('pre', { class: 'mono', tabindex: '0', text }));
}

function reportCell(r) {
  if (typeof r.text === 'string') return collapsed(`Show the report (${byteSize(r.size)})`, r.text);
  const detail = r.detail && Object.keys(r.detail).length ? JSON.stringify(r.detail, null, 2) : null;
  return detail ? collapsed('Show what was read', detail) : h('span', { class: 'muted', text: '—' });
}

function fromCell(from) {
  if (!from) return h('span', { class: 'muted', text: 'Null sender <>' });
  return h('span', { class: 'address' }, wrapEmail(from));
}

export async function renderReports(body) {
  let reports = [];
  let more = false;
  let shownStatus = 'unparsed';
  const listMsg = messageSlot();
  const tableSlot = h('div', { class: 'table-slot' });
  const count = h('p', { class: 'counts', role: 'status', 'aria-live': 'polite' });
  const statusSelect = h('select', { id: uid('status') },
    Object.entries(STATUSES).map(([v, [l]]) => h('option', { value: v, text: l })),
    h('option', { value: '', text: 'All' }));
  const loadMore = h('button', { type: 'button', class: 'btn btn-secondary', hidden: true }, 'Load more');
  const refresh = refreshButton(() => load(), (err) => listMsg.show(err.message, 'error'));

  async function load(append = false) {
    const status = append ? shownStatus : statusSelect.value;
    const q = new URLSearchParams({ limit: String(PAGE) });
    if (status) q.set('status', status);
    if (append && reports.length) q.set('before', String(reports[reports.length - 1].id));
    const page = (await api('GET', `/api/reports?${q}`)).reports;
    shownStatus = status;
    reports = append ? reports.concat(page) : page;
    more = page.length === PAGE;
    renderTable();
  }

  function renderTable() {
    replace(tableSlot, table({
      caption: 'Returned reports',
      className: 'reports',
      columns: [{ label: 'Received' }, { label: 'From' }, { label: 'Status' }, { label: 'Message' }, { label: 'Size', className: 'num' }, { label: 'Report' }],
      rows: reports.map((r) => {
        const [label, tone] = STATUSES[r.status] || WAITING[r.status] || [r.status, 'neutral'];
        return [
          time(r.received_at),
          fromCell(r.from),
          h('span', { class: 'details' }, badge(label, tone), r.kind ? h('span', { class: 'muted', text: KINDS[r.kind] || r.kind }) : null),
          messageLink(r.message_id),
          byteSize(r.size),
          reportCell(r),
        ];
      }),
      empty: shownStatus === 'unparsed' ? 'Every report that came back was read.' : 'No report came back.',
    }));
    loadMore.hidden = !more;
    const n = reports.length;
    count.textContent = `Showing ${n} ${n === 1 ? 'report' : 'reports'}${more ? '; there are more' : ''}, newest first.`;
  }

  statusSelect.addEventListener('change', () => {
    listMsg.clear();
    load().catch((err) => {
      if (!err.sessionEnded) listMsg.show(err.message, 'error');
    });
  });
  loadMore.addEventListener('click', async () => {
    listMsg.clear();
    loadMore.disabled = true;
    try {
      await load(true);
    } catch (err) {
      if (!err.sessionEnded) listMsg.show(err.message, 'error');
    } finally {
      loadMore.disabled = false;
    }
  });

  await load();
  replace(body,
    h('div', { class: 'page-tools' },
      h('p', { class: 'page-intro' },
        'Bounces and complaints that came back to the return path. Postern reads delivery status notifications and feedback reports itself and adds hard bounces and complaints to ',
        h('a', { href: '#/suppressions', text: 'Suppressions' }),
        '; a report it could not read is kept here, unparsed, for you to read.'),
      refresh),
    h('section', { class: 'card', 'aria-labelledby': 'reports-title' },
      h('div', { class: 'card-head card-head-row' },
        h('h2', { id: 'reports-title', text: 'Reports' }),
        h('div', { class: 'field field-inline' }, h('label', { for: statusSelect.id, text: 'Status' }), statusSelect)),
      count,
      listMsg.el,
      tableSlot,
      h('div', { class: 'form-actions' }, loadMore)));
}
