// Monitoring › Activity: the account's audit log, newest first, filterable.
import { api } from './http.js';
import { h, replace, uid, time, table, wrapEmail, refreshButton } from './dom.js';

export async function renderActivity(body) {
  let events = [];
  const actionSelect = h('select', { id: uid('action') });
  const search = h('input', { id: uid('search'), type: 'search', autocomplete: 'off', placeholder: 'Actor, target or detail' });
  const refresh = refreshButton(() => load());
  const count = h('p', { class: 'counts', role: 'status', 'aria-live': 'polite' });
  const tableSlot = h('div');

  async function load() {
    events = (await api('GET', '/api/audit?limit=200')).events;
    const chosen = actionSelect.value;
    const actions = [...new Set(events.map((e) => e.action))].sort();
    replace(actionSelect,
      h('option', { value: '', text: 'All actions' }),
      actions.map((a) => h('option', { value: a, text: a })));
    actionSelect.value = actions.includes(chosen) ? chosen : '';
    render();
  }

  function render() {
    const action = actionSelect.value;
    const q = search.value.trim().toLowerCase();
    const shown = events.filter((e) => (!action || e.action === action)
      && (!q || [e.actor, e.target, e.detail, e.ip].some((x) => (x || '').toLowerCase().includes(q))));
    count.textContent = `Showing ${shown.length} of ${events.length} most recent events.`;
    replace(tableSlot, table({
      caption: 'Audit events',
      columns: [{ label: 'Time' }, { label: 'Actor' }, { label: 'Action' }, { label: 'Target' }, { label: 'Detail' }, { label: 'IP' }],
      rows: shown.map((e) => [
        time(e.at),
        h('span', { class: 'address' }, e.actor ? wrapEmail(e.actor) : '—'),
        h('code', { class: `action action-${e.action.split('.')[0].replace(/[^a-z_]/g, '')}`, text: e.action }),
        h('span', { class: 'address' }, e.target ? wrapEmail(e.target) : '—'),
        h('span', { class: 'detail', text: e.detail || '—' }),
        h('span', { class: 'mono', text: e.ip || '—' }),
      ]),
      empty: events.length ? 'No event matches the filter.' : 'No activity yet.',
    }));
  }

  actionSelect.addEventListener('change', render);
  search.addEventListener('input', render);

  await load();
  replace(body,
    h('p', { class: 'page-intro', text: 'Who did what in this account: logins, setting changes, senders, domains, users and keys. The 200 most recent events, newest first.' }),
    h('section', { class: 'card' },
      h('div', { class: 'filters' },
        h('div', { class: 'field' }, h('label', { for: actionSelect.id, text: 'Action' }), actionSelect),
        h('div', { class: 'field field-grow' }, h('label', { for: search.id, text: 'Search' }), search),
        h('div', { class: 'form-actions' }, refresh)),
      count,
      tableSlot));
}
