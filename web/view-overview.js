// Monitoring › Overview, the page after login: the account's mail per hour (24 h) and per
// day (30 d) as charts, refusals by reason, the queue now, and the domains and senders that
// still wait for something (GET /api/overview, one request).
import { api } from './http.js';
import { h, replace, badge, table, wrapEmail, refreshButton, messageSlot } from './dom.js';
import { barChart } from './chart.js';
import { REASONS } from './view-messages.js';

const SERIES = [
  { key: 'accepted', label: 'Accepted' },
  { key: 'delivered', label: 'Delivered' },
  { key: 'bounced', label: 'Bounced' },
  { key: 'dropped', label: 'Dropped' },
  { key: 'refused', label: 'Refused' },
];
const DOMAIN_STATUS = { pending: ['Pending', 'warn'], failed: ['Failed', 'bad'] };

// Hours in the viewer's time zone (an hour is an hour anywhere); days are UTC days, and say so.
// Where the offset is not whole hours (UTC+5:30), an hour starts at :30 and is labelled so.
const clockFmt = new Intl.DateTimeFormat(undefined, { hour: '2-digit', minute: '2-digit' });
const hourFmt = new Date().getTimezoneOffset() % 60 === 0
  ? new Intl.DateTimeFormat(undefined, { hour: 'numeric' }) : clockFmt;
const hourLongFmt = new Intl.DateTimeFormat(undefined, { month: 'short', day: 'numeric', hour: '2-digit', minute: '2-digit' });
const dayFmt = new Intl.DateTimeFormat(undefined, { month: 'short', day: 'numeric', timeZone: 'UTC' });
const dayLongFmt = new Intl.DateTimeFormat(undefined, { weekday: 'short', month: 'short', day: 'numeric', timeZone: 'UTC' });
const number = new Intl.NumberFormat();

/** Every third label, the last bucket's (now) always among them. */
function everyThird(fmt, n) {
  return (b, i) => ((n - 1 - i) % 3 === 0 ? fmt.format(new Date(b.start)) : null);
}

function stat(label, value, extra = '') {
  return h('div', { class: `stat ${extra}`.trim() },
    h('p', { class: 'stat-label', text: label }),
    h('p', { class: 'stat-value', text: number.format(value) }));
}

function totalsCard(days) {
  const sum = (key) => days.reduce((a, b) => a + b[key], 0);
  return h('section', { class: 'card', 'aria-labelledby': 'ov-totals' },
    h('h2', { id: 'ov-totals', text: 'Totals, last 30 days' }),
    h('div', { class: 'stat-cards overview-totals' },
      SERIES.map((x) => stat(x.label, sum(x.key), x.key === 'refused' || x.key === 'bounced' ? 'stat-bad' : ''))));
}

// The two charts: which buckets of the answer, and how a bucket is named.
const CHARTS = [
  {
    key: 'hours', heading: 'Last 24 hours', title: 'Mail per hour, last 24 hours', bucketLabel: 'Hour',
    sub: 'Per hour, in your time zone; the last bar is the current hour.', long: hourLongFmt, short: hourFmt,
  },
  {
    key: 'days', heading: 'Last 30 days', title: 'Mail per day, last 30 days', bucketLabel: 'Day (UTC)',
    sub: 'Per day (UTC days); the last bar is today.', long: dayLongFmt, short: dayFmt,
  },
];

function chartCard(c, buckets) {
  const id = `ov-${c.key}`;
  return h('section', { class: 'card', 'aria-labelledby': id },
    h('h2', { id, text: c.heading }),
    h('p', { class: 'card-sub', text: c.sub }),
    barChart({
      title: c.title,
      buckets,
      series: SERIES,
      label: (b) => c.long.format(new Date(b.start)),
      tick: everyThird(c.short, buckets.length),
      bucketLabel: c.bucketLabel,
    }));
}

function queueCard(queue) {
  return h('section', { class: 'card', 'aria-labelledby': 'ov-queue' },
    h('h2', { id: 'ov-queue', text: 'Queue now' }),
    h('div', { class: 'stat-cards' },
      stat('Queued', queue.queued),
      stat('Scheduled', queue.scheduled),
      stat('Deferred', queue.deferred, queue.deferred ? 'stat-warn' : '')),
    h('p', { class: 'card-sub' }, 'Each message is listed on ', h('a', { href: '#/messages', text: 'Messages' }), '.'));
}

function refusalsCard(refusals) {
  const total = Object.values(refusals).reduce((a, b) => a + b, 0);
  return h('section', { class: 'card', 'aria-labelledby': 'ov-refusals' },
    h('h2', { id: 'ov-refusals', text: 'Refusals by reason' }),
    h('p', { class: 'card-sub', text: `${number.format(total)} send requests refused by the sender policy in the last 30 days.` }),
    table({
      caption: 'Refusals by reason, last 30 days',
      columns: [{ label: 'Reason' }, { label: 'Count', className: 'num' }],
      rows: Object.entries(refusals).map(([code, n]) => ({
        className: n ? '' : 'row-zero',
        cells: [h('span', null, REASONS[code] || code, ' ', h('code', { class: 'mono muted', text: code })), number.format(n)],
      })),
      stack: false,
    }));
}

function attentionCard(attention) {
  const { domains, senders } = attention;
  const items = [
    ...domains.map((d) => {
      const [label, tone] = DOMAIN_STATUS[d.status] || [d.status, 'neutral'];
      return h('li', { class: 'attention-item' },
        h('a', { href: '#/domains', text: d.name }), ' ', badge(label, tone),
        h('span', { class: 'muted', text: d.status === 'failed' ? ' Its last DNS check failed: check its records.' : ' Its DNS records are not verified yet.' }));
    }),
    ...senders.map((x) => h('li', { class: 'attention-item' },
      h('a', { href: '#/mail-settings', class: 'address' }, wrapEmail(x.email)), ' ', badge('Verification Pending', 'warn'),
      h('span', { class: 'muted', text: ' Not verified yet: mail from it is refused while the switch is on.' }))),
  ];
  return h('section', { class: 'card', 'aria-labelledby': 'ov-attention' },
    h('h2', { id: 'ov-attention', text: 'Needs attention' }),
    items.length
      ? h('ul', { class: 'attention-list' }, items)
      : h('p', { class: 'card-sub', text: 'Nothing: every sending domain is verified and every sender address confirmed.' }));
}

export async function renderOverview(body) {
  const msg = messageSlot();
  const slot = h('div', { class: 'overview' });
  const updated = h('p', { class: 'counts', role: 'status', 'aria-live': 'polite' });

  async function load() {
    const o = await api('GET', '/api/overview');
    msg.clear();
    updated.textContent = `Updated ${clockFmt.format(new Date(o.generated_at))}.`;
    replace(slot,
      totalsCard(o.days),
      CHARTS.map((c) => chartCard(c, o[c.key])),
      h('div', { class: 'overview-pair' }, queueCard(o.queue), refusalsCard(o.refusals)),
      attentionCard(o.attention));
  }

  await load();
  replace(body,
    h('div', { class: 'page-tools' },
      h('p', { class: 'page-intro', text: 'This account\'s mail at a glance: accepted (one per recipient), delivered, bounced and dropped, and the send requests the sender policy refused.' }),
      h('div', { class: 'form-actions' }, refreshButton(() => load(), (err) => msg.show(err.message, 'error')))),
    updated,
    msg.el,
    slot);
}
