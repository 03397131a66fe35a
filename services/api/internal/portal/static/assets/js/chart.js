// A small time-series line chart on <canvas>: a few series, a y axis with
// round ticks, times on the x axis, and an HTML legend with the latest values
// (also the canvas's accessible label).

import {h} from './dom.js';

/** palette: eight colours distinguishable on white, one per GPU of a node. */
export const palette = ['#1f77b4', '#d62728', '#2ca02c', '#9467bd', '#e67e00', '#17becf', '#8c564b', '#e377c2'];

function niceStep(range, ticks) {
  const raw = range / ticks;
  const mag = 10 ** Math.floor(Math.log10(raw || 1));
  const n = raw / mag;
  return (n <= 1 ? 1 : n <= 2 ? 2 : n <= 5 ? 5 : 10) * mag;
}

function hhmmss(t) {
  const d = new Date(t);
  return d.toLocaleTimeString(undefined, {hour: '2-digit', minute: '2-digit', second: '2-digit'});
}

/**
 * lineChart returns {el, update(series)}: el is the chart's element, update
 * draws series [{label, points: [[timeMs, value], ...]}]. opts: {title, unit,
 * min (default 0), max (fixed top, else from the data), window (ms of history
 * shown, default everything)}.
 */
export function lineChart(opts) {
  const canvas = h('canvas', {role: 'img', 'aria-label': `${opts.title}: no data yet`});
  const legend = h('ul', {class: 'legend'});
  const el = h('figure', {class: 'chart', style: {margin: '0'}, 'data-chart': opts.id || opts.title},
    h('h3', {}, `${opts.title}${opts.unit ? ` (${opts.unit})` : ''}`), canvas, legend);
  let last = [];
  const ro = typeof ResizeObserver === 'function' ? new ResizeObserver(() => draw(last)) : null;
  if (ro) ro.observe(canvas);

  function draw(series) {
    last = series;
    const dpr = window.devicePixelRatio || 1;
    const w = canvas.clientWidth || 300;
    const hgt = canvas.clientHeight || 180;
    if (canvas.width !== Math.round(w * dpr) || canvas.height !== Math.round(hgt * dpr)) {
      canvas.width = Math.round(w * dpr);
      canvas.height = Math.round(hgt * dpr);
    }
    const ctx = canvas.getContext('2d');
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    ctx.clearRect(0, 0, w, hgt);
    const pad = {l: 46, r: 8, t: 8, b: 22};
    const pts = series.flatMap((s) => s.points);
    let tMax = pts.length ? Math.max(...pts.map((p) => p[0])) : Date.now();
    let tMin = pts.length ? Math.min(...pts.map((p) => p[0])) : tMax - 60000;
    if (opts.window) tMin = Math.max(tMin, tMax - opts.window);
    if (tMax - tMin < 10000) tMin = tMax - 10000;
    const yMin = opts.min ?? 0;
    let yMax = opts.max ?? Math.max(yMin + 1, ...pts.map((p) => p[1]));
    const step = niceStep(yMax - yMin, 4);
    if (opts.max === undefined) yMax = Math.ceil(yMax / step) * step;
    const x = (t) => pad.l + ((t - tMin) / (tMax - tMin)) * (w - pad.l - pad.r);
    const y = (v) => pad.t + (1 - (v - yMin) / (yMax - yMin || 1)) * (hgt - pad.t - pad.b);

    ctx.font = '11px system-ui, sans-serif';
    ctx.fillStyle = '#4f5b6b';
    ctx.strokeStyle = '#e1e6ec';
    ctx.lineWidth = 1;
    ctx.textAlign = 'right';
    ctx.textBaseline = 'middle';
    for (let v = yMin; v <= yMax + step / 2; v += step) {
      const yy = Math.round(y(v)) + 0.5;
      ctx.beginPath();
      ctx.moveTo(pad.l, yy);
      ctx.lineTo(w - pad.r, yy);
      ctx.stroke();
      ctx.fillText(Number(v.toFixed(2)).toString(), pad.l - 6, yy);
    }
    ctx.textAlign = 'center';
    ctx.textBaseline = 'top';
    const nx = Math.max(1, Math.floor((w - pad.l) / 120));
    for (let i = 0; i <= nx; i++) {
      const t = tMin + ((tMax - tMin) * i) / nx;
      const label = hhmmss(t);
      const half = ctx.measureText(label).width / 2;
      ctx.fillText(label, Math.min(Math.max(x(t), pad.l + half), w - pad.r - half), hgt - pad.b + 5);
    }
    series.forEach((s, i) => {
      const p = s.points.filter((q) => q[0] >= tMin).sort((a, b) => a[0] - b[0]);
      if (!p.length) return;
      ctx.strokeStyle = s.color || palette[i % palette.length];
      ctx.lineWidth = 1.75;
      ctx.beginPath();
      p.forEach(([t, v], j) => (j ? ctx.lineTo(x(t), y(v)) : ctx.moveTo(x(t), y(v))));
      ctx.stroke();
      if (p.length === 1) {
        ctx.fillStyle = ctx.strokeStyle;
        ctx.fillRect(x(p[0][0]) - 2, y(p[0][1]) - 2, 4, 4);
      }
    });
    legend.replaceChildren(...series.map((s, i) => {
      const lastV = s.points.length ? s.points[s.points.length - 1][1] : null;
      return h('li', {}, h('span', {class: 'swatch', style: {background: s.color || palette[i % palette.length]}}),
        `${s.label}${lastV === null ? '' : `: ${fmt(lastV)}`}`);
    }));
    const summary = series.map((s) => {
      const v = s.points.length ? s.points[s.points.length - 1][1] : null;
      return `${s.label} ${v === null ? 'no data' : fmt(v) + (opts.unit ? ` ${opts.unit}` : '')}`;
    }).join(', ');
    canvas.setAttribute('aria-label', `${opts.title}, latest: ${summary || 'no data yet'}`);
    el.dataset.points = String(pts.length);
  }

  return {el, update: draw, destroy: () => ro && ro.disconnect()};
}

function fmt(v) {
  return Math.abs(v) >= 100 ? v.toFixed(0) : v.toFixed(1);
}
