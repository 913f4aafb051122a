// Bar charts as inline SVG, built with DOM APIs: a group of bars per bucket (an hour, a day),
// one colour per series taken from CSS custom properties (so the light and dark schemes both
// read), a y axis with grid lines, x labels, a legend, and the same numbers as a table.
import { h, table, srOnly } from './dom.js';

const SVG = 'http://www.w3.org/2000/svg';
const WIDTH = 720;
const HEIGHT = 220;
const PAD = { top: 12, right: 8, bottom: 26, left: 44 };

/** An SVG element: attributes set as given, children appended (strings as text). */
function s(tag, attrs, ...children) {
  const el = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs || {})) if (v !== null && v !== undefined) el.setAttribute(k, String(v));
  for (const c of children) if (c !== null && c !== undefined) el.append(c);
  return el;
}

/** The top of the y axis: the largest value rounded up to 1, 2, 4, 6 or 8 times a power of
 * ten, and even, so the middle grid line falls on a whole number. */
export function axisMax(max) {
  if (max <= 2) return 2;
  const k = 10 ** Math.floor(Math.log10(max));
  const step = [1, 2, 4, 6, 8, 10].find((m) => m * k >= max);
  return Math.max(2, step * k);
}

const number = new Intl.NumberFormat();

/**
 * A chart of buckets: [{...values}], series: [{key, label}], label(bucket) the bucket's name
 * in full ("Dec 3, 14:00"), tick(bucket, i) its x label or null, title the chart's name,
 * bucketLabel the header of the table's first column. Only bars above zero are drawn.
 */
export function barChart({ title, buckets, series, label, tick, bucketLabel }) {
  const plotW = WIDTH - PAD.left - PAD.right;
  const plotH = HEIGHT - PAD.top - PAD.bottom;
  const max = Math.max(0, ...buckets.flatMap((b) => series.map((x) => b[x.key])));
  const top = axisMax(max);
  const y = (v) => PAD.top + plotH - (v / top) * plotH;
  const group = plotW / buckets.length;
  const barW = (group * 0.8) / series.length;

  const totals = series.map((x) => `${number.format(buckets.reduce((a, b) => a + b[x.key], 0))} ${x.label.toLowerCase()}`);
  const svg = s('svg', {
    class: 'chart-svg', viewBox: `0 0 ${WIDTH} ${HEIGHT}`, role: 'img',
    'aria-label': `${title}: ${totals.join(', ')}. The numbers are in the table below.`,
  }, s('title', null, title));

  for (const v of [0, top / 2, top]) {
    svg.append(s('line', { class: v ? 'chart-grid' : 'chart-axis', x1: PAD.left, x2: WIDTH - PAD.right, y1: y(v), y2: y(v) }),
      s('text', { class: 'chart-label', x: PAD.left - 6, y: y(v) + 4, 'text-anchor': 'end' }, number.format(v)));
  }
  buckets.forEach((b, i) => {
    const x0 = PAD.left + i * group + group * 0.1;
    series.forEach((x, j) => {
      const v = b[x.key];
      if (!v) return;
      const hgt = Math.max(1, (v / top) * plotH);
      svg.append(s('rect', {
        class: `chart-bar bar-${x.key}`, 'data-series': x.key, 'data-value': v,
        x: (x0 + j * barW).toFixed(2), y: (PAD.top + plotH - hgt).toFixed(2),
        width: Math.max(1, barW - 0.5).toFixed(2), height: hgt.toFixed(2),
      }, s('title', null, `${label(b)}: ${number.format(v)} ${x.label.toLowerCase()}`)));
    });
    const t = tick(b, i);
    // The last label ends at the plot's edge rather than past it.
    const last = i === buckets.length - 1;
    const x = last ? WIDTH - PAD.right : PAD.left + (i + 0.5) * group;
    if (t) svg.append(s('text', { class: 'chart-label', x: x.toFixed(2), y: HEIGHT - 8, 'text-anchor': last ? 'end' : 'middle' }, t));
  });

  const legend = h('ul', { class: 'chart-legend' },
    series.map((x) => h('li', null, h('span', { class: `swatch bar-${x.key}`, 'aria-hidden': 'true' }), x.label)));
  const numbers = table({
    caption: title,
    columns: [{ label: bucketLabel }, ...series.map((x) => ({ label: x.label, className: 'num' }))],
    rows: buckets.map((b) => [label(b), ...series.map((x) => number.format(b[x.key]))]),
    stack: false,
  });
  return h('figure', { class: 'chart' },
    h('figcaption', { class: 'visually-hidden', text: title }),
    h('div', { class: 'chart-frame' }, svg),
    legend,
    h('details', { class: 'chart-table' }, h('summary', null, 'Show as table', srOnly(`: ${title}`)), numbers));
}
