// Observability: per workspace, every GPU's latest reading (GET
// /api/v1/telemetry/gpus), hotspots first (high temperature or power),
// filters and search, idle GPUs highlighted, and a GPU's time series on
// demand. gpuCharts is also the GPR detail page's live GPU view.

import {get, qs, items} from '../api.js';
import {h, hiddenText, mount, field, select, showError} from '../dom.js';
import {gib} from '../format.js';
import {lineChart} from '../chart.js';
import {listWorkspaces} from './requests.js';
import {isAdmin} from '../session.js';

/** HOT_TEMP_C and HOT_POWER_SHARE: a GPU at or above either is a hotspot. */
export const HOT_TEMP_C = 80;
export const HOT_POWER_SHARE = 0.9;

const watts = (mw) => (mw ?? 0) / 1000;

/** heat is how close a GPU runs to its limits (temperature to 90 °C, power to its limit), 0..1+. */
export function heat(g) {
  const t = (g.tempC ?? 0) / 90;
  const p = g.powerLimitMw ? (g.powerMw ?? 0) / g.powerLimitMw : 0;
  return Math.max(t, p);
}

/** isHot: the GPU is a hotspot. */
export function isHot(g) {
  return (g.tempC ?? 0) >= HOT_TEMP_C || (g.powerLimitMw ? (g.powerMw ?? 0) / g.powerLimitMw >= HOT_POWER_SHARE : false);
}

/** isIdle: the GPU does no work (the telemetry service marks idleSince; else 0 % and no process). */
export function isIdle(g) {
  if (g.lost) return false;
  if (g.idleSince) return true;
  return (g.gpuUtil ?? 0) === 0 && !(g.processes || []).length;
}

/** gpuLabel names a GPU for people: node/index. */
export const gpuLabel = (g) => `${g.node}/${g.index}`;

/**
 * gpuCharts is a live view of the GPUs a telemetry filter selects ({gprId},
 * {uuid}, {workspace}): a table of the latest readings and four charts
 * (utilisation, memory, power, temperature) with one line per GPU. The
 * history comes from the 10 s rollups; then the latest samples are polled.
 */
export function gpuCharts(filter, idPrefix, {pollMs = 2000, windowMs = 15 * 60000} = {}) {
  const defs = [
    {key: 'util', title: 'Utilisation', unit: '%', max: 100, sample: (g) => g.gpuUtil ?? 0, rollup: (r) => r.util.avg},
    {key: 'mem', title: 'Memory used', unit: 'GiB', sample: (g) => (g.memUsed ?? 0) / 1073741824, rollup: (r) => r.memUsed.avg / 1073741824},
    {key: 'power', title: 'Power', unit: 'W', sample: (g) => watts(g.powerMw), rollup: (r) => r.powerW.avg},
    {key: 'temp', title: 'Temperature', unit: '°C', sample: (g) => g.tempC ?? 0, rollup: (r) => r.tempC.avg},
  ];
  const charts = defs.map((d) => lineChart({title: d.title, unit: d.unit, max: d.max, window: windowMs, id: `${idPrefix}-${d.key}`}));
  const table = h('div', {class: 'table-wrap', id: `${idPrefix}-gpu-table`});
  const err = h('div');
  const el = h('div', {}, err, table, h('div', {class: 'grid grid-4', id: `${idPrefix}-charts`, style: {marginTop: '1rem'}}, charts.map((c) => c.el)));
  const series = new Map(); // uuid → {label, points per chart key}
  let timer = 0;

  function track(uuid, label) {
    if (!series.has(uuid)) series.set(uuid, {label: label || uuid.slice(0, 12), pts: Object.fromEntries(defs.map((d) => [d.key, []]))});
    const s = series.get(uuid);
    if (label) s.label = label;
    return s;
  }
  function add(s, key, t, v) {
    const p = s.pts[key];
    if (p.length && p[p.length - 1][0] >= t) return;
    p.push([t, v]);
    const cut = t - windowMs;
    while (p.length && p[0][0] < cut) p.shift();
  }
  function redraw() {
    const list = [...series.values()].sort((a, b) => a.label.localeCompare(b.label, undefined, {numeric: true}));
    charts.forEach((c, i) => c.update(list.map((s) => ({label: s.label, points: s.pts[defs[i].key]}))));
  }
  async function history() {
    const from = new Date(Date.now() - windowMs).toISOString().replace(/\.\d+Z$/, 'Z');
    const data = await get(`api/v1/telemetry/series${qs({...filter, res: '10s', from})}`);
    for (const b of data.points || []) {
      const t = new Date(b.start).getTime() + 5000; // the middle of the window
      for (const r of b.gpus || []) {
        const s = track(r.uuid);
        defs.forEach((d) => add(s, d.key, t, d.rollup(r)));
      }
    }
  }
  async function latest() {
    const gpus = items(await get(`api/v1/telemetry/gpus${qs(filter)}`), 'gpus');
    for (const g of gpus) {
      const s = track(g.uuid, gpuLabel(g));
      const t = new Date(g.at).getTime();
      if (!g.lost) defs.forEach((d) => add(s, d.key, t, d.sample(g)));
    }
    drawTable(gpus);
    redraw();
  }
  function drawTable(gpus) {
    if (!gpus.length) {
      mount(table, h('p', {class: 'empty'}, 'No GPU readings yet.'));
      return;
    }
    gpus.sort((a, b) => gpuLabel(a).localeCompare(gpuLabel(b), undefined, {numeric: true}));
    mount(table, h('table', {},
      h('caption', {class: 'visually-hidden'}, 'Latest GPU readings'),
      h('thead', {}, h('tr', {}, ['GPU', 'Utilisation', 'Memory', 'Power', 'Temperature', 'State'].map((c, i) =>
        h('th', {scope: 'col', class: i >= 1 && i <= 4 ? 'num' : null}, c)))),
      h('tbody', {}, gpus.map((g) => gpuRow(g)))));
  }
  async function tickOnce() {
    try {
      await latest();
      showError(err, null);
    } catch (e) {
      showError(err, e);
    }
  }
  return {
    el,
    async start() {
      try {
        await history();
      } catch (e) {
        showError(err, e);
      }
      await tickOnce();
      timer = setInterval(tickOnce, pollMs);
    },
    destroy() {
      clearInterval(timer);
      charts.forEach((c) => c.destroy());
    },
  };
}

/** gpuRow is one GPU's latest reading as a table row. */
function gpuRow(g, extra) {
  const hot = isHot(g);
  const idle = isIdle(g);
  const state = g.lost ? h('span', {class: 'badge bad'}, 'Lost')
    : [hot ? h('span', {class: 'badge bad'}, 'Hot') : null, ' ', idle ? h('span', {class: 'badge warn'}, 'Idle') : null,
      !hot && !idle ? h('span', {class: 'badge ok'}, 'Busy') : null];
  return h('tr', {class: [hot ? 'hot' : '', idle ? 'idle' : ''].join(' ').trim() || null, 'data-uuid': g.uuid,
    'data-hot': String(hot), 'data-idle': String(idle)},
    h('td', {}, h('strong', {class: 'nowrap'}, gpuLabel(g)), g.name ? h('span', {class: 'muted'}, ` · ${g.name}`) : null,
      h('div', {class: 'muted mono'}, g.uuid)),
    h('td', {class: 'num'}, g.gpuUtil === undefined || g.gpuUtil === null ? '–' : `${g.gpuUtil} %`),
    h('td', {class: 'num nowrap'}, `${gib(g.memUsed ?? 0)} / ${gib(g.memTotal ?? 0)} GiB`),
    h('td', {class: 'num nowrap'}, g.powerMw === undefined ? '–' : `${watts(g.powerMw).toFixed(0)} / ${watts(g.powerLimitMw).toFixed(0)} W`),
    h('td', {class: 'num'}, g.tempC === undefined ? '–' : `${g.tempC} °C`),
    h('td', {class: 'nowrap'}, state),
    extra || null);
}

export async function render(main, ctx) {
  const wss = await listWorkspaces();
  const admin = isAdmin(ctx.session);
  const options = [...(admin ? [['', 'All workspaces']] : []), ...wss.map((w) => [w.name, w.name])];
  if (!options.length) {
    mount(main, h('h1', {}, 'Observability'), h('p', {}, 'You have no workspace yet.'));
    return;
  }
  const wanted = ctx.query.get('workspace');
  const current = options.some(([v]) => v === wanted) ? wanted : options[0][0];
  const wsSel = select({id: 'obs-workspace'}, options, current);
  const search = h('input', {id: 'obs-search', type: 'search', placeholder: 'node, GPU, model, request…', autocomplete: 'off'});
  const show = select({id: 'obs-filter'}, [['all', 'All GPUs'], ['hot', 'Hotspots'], ['idle', 'Idle'], ['busy', 'Busy']], 'all');
  const auto = h('input', {id: 'obs-auto', type: 'checkbox', checked: true});
  const stats = h('div', {class: 'stats', id: 'obs-stats'});
  const table = h('div', {class: 'table-wrap', id: 'obs-table'}, h('p', {class: 'muted'}, 'Loading…'));
  const err = h('div');
  const detail = h('section', {class: 'panel', id: 'obs-detail', hidden: true, 'aria-labelledby': 'obs-detail-h'});
  let gpus = [];
  let selected = '';
  let charts = null;

  wsSel.addEventListener('change', () => ctx.navigate(`observability${qs({workspace: wsSel.value})}`, {replace: true}));
  search.addEventListener('input', draw);
  show.addEventListener('change', draw);

  mount(main,
    h('div', {class: 'page-head'}, h('h1', {}, 'Observability')),
    h('div', {class: 'panel'}, h('div', {class: 'row'},
      field('Workspace', wsSel), field('Search', search), field('Show', show),
      h('div', {class: 'field'}, h('label', {class: 'check', for: 'obs-auto'}, auto, 'Refresh every 5 s')))),
    err, stats, detail,
    h('section', {class: 'panel', 'aria-labelledby': 'obs-gpus-h'},
      h('h2', {id: 'obs-gpus-h'}, 'GPUs, hotspots first'), table));

  async function load() {
    try {
      gpus = items(await get(`api/v1/telemetry/gpus${qs({workspace: wsSel.value})}`), 'gpus');
      showError(err, null);
      draw();
    } catch (e) {
      showError(err, e);
    }
  }
  function draw() {
    const q = search.value.trim().toLowerCase();
    const list = gpus.filter((g) => {
      if (show.value === 'hot' && !isHot(g)) return false;
      if (show.value === 'idle' && !isIdle(g)) return false;
      if (show.value === 'busy' && (isIdle(g) || g.lost)) return false;
      if (!q) return true;
      return [g.node, g.cluster, g.uuid, g.name, g.gprId, g.workspace, gpuLabel(g)].some((x) => String(x || '').toLowerCase().includes(q));
    }).sort((a, b) => heat(b) - heat(a) || gpuLabel(a).localeCompare(gpuLabel(b), undefined, {numeric: true}));
    const hot = gpus.filter(isHot).length;
    const idle = gpus.filter(isIdle).length;
    const util = gpus.length ? gpus.reduce((s, g) => s + (g.gpuUtil ?? 0), 0) / gpus.length : 0;
    mount(stats, [['GPUs', gpus.length, 'gpus'], ['Hotspots', hot, 'hot'], ['Idle', idle, 'idle'], ['Average utilisation', `${util.toFixed(0)} %`, 'util']]
      .map(([label, v, k]) => h('div', {class: 'stat', 'data-stat': k}, h('div', {class: 'value'}, String(v)), h('div', {class: 'label'}, label))));
    if (!list.length) {
      mount(table, h('p', {class: 'empty'}, gpus.length ? 'No GPU matches the filters.' : 'No GPU readings for this workspace: its requests hold no nodes right now.'));
      return;
    }
    mount(table, h('table', {id: 'obs-gpus'},
      h('caption', {class: 'visually-hidden'}, 'GPUs sorted by heat, hottest first; idle GPUs highlighted'),
      h('thead', {}, h('tr', {}, ['GPU', 'Utilisation', 'Memory', 'Power', 'Temperature', 'State', 'Request', ''].map((c, i) =>
        h('th', {scope: 'col', class: i >= 1 && i <= 4 ? 'num' : null}, c || hiddenText('Actions'))))),
      h('tbody', {}, list.map((g) => {
        const row = gpuRow(g, [
          h('td', {class: 'nowrap'}, g.gprId ? h('a', {href: `requests/${g.gprId}`, class: 'mono'}, g.gprId) : h('span', {class: 'muted'}, g.workspace || '–')),
          h('td', {}, h('button', {type: 'button', class: 'small secondary', 'data-action': 'series', 'aria-pressed': String(g.uuid === selected),
            onclick: () => openSeries(g)}, 'Time series'))]);
        if (g.uuid === selected) row.classList.add('selected');
        return row;
      }))));
  }
  function openSeries(g) {
    selected = g.uuid;
    if (charts) charts.destroy();
    charts = gpuCharts({uuid: g.uuid}, 'obs', {pollMs: 2000});
    mount(detail, h('div', {class: 'panel-head'}, h('h2', {id: 'obs-detail-h'}, `GPU ${gpuLabel(g)}`),
      h('span', {class: 'muted mono'}, g.uuid), h('span', {class: 'spacer'}),
      h('button', {type: 'button', class: 'small secondary', onclick: closeSeries}, 'Close')), charts.el);
    detail.hidden = false;
    charts.start();
    draw();
    detail.scrollIntoView({block: 'nearest'});
  }
  function closeSeries() {
    selected = '';
    if (charts) charts.destroy();
    charts = null;
    detail.hidden = true;
    draw();
  }

  await load();
  const timer = setInterval(() => {
    if (auto.checked) load();
  }, 5000);
  return () => {
    clearInterval(timer);
    if (charts) charts.destroy();
  };
}
